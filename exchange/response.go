package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/credproxy/credproxy/internal/secret"
)

// MaxResponseSize caps what is read from an identity service. Token
// responses are a few KiB; anything larger is refused rather than buffered.
const MaxResponseSize = 1 << 20

// MaxLifetime caps the lifetime taken from a token response. A service that
// answers with an absurd expires_in (years, or an overflowing number) gets
// its token renewed within the cap rather than never.
const MaxLifetime = 30 * 24 * time.Hour

// maxTokenSize bounds an access token: it goes into a request header, where
// servers commonly refuse more than 8-16 KiB in total.
const maxTokenSize = 16 << 10

// maxMessageLen bounds a service message carried in an error and logged.
const maxMessageLen = 300

// call is one HTTP exchange with an identity service.
type call struct {
	op     string
	client *http.Client
	// redact lists the credentials sent, to be scrubbed from any message
	// the service echoes back.
	redact []secret.Secret
}

// do sends req and returns the body of a 2xx answer, read with a size cap.
// Any other answer becomes an *Error carrying the service's message.
func (c call) do(req *http.Request) ([]byte, error) {
	a, err := c.doResponse(req)
	return a.body, err
}

// readAnswer reads a body up to one byte over MaxResponseSize, so that the
// caller can tell an answer at the cap from one over it.
func readAnswer(body io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(body, MaxResponseSize+1))
}

// oversized is the error for an answer over MaxResponseSize, whatever its
// status: the service's bytes past the cap are not read, and what was read
// is not parsed.
func oversized(op string, status int) *Error {
	return &Error{Op: op, Status: status, Message: fmt.Sprintf("answer larger than %d bytes", MaxResponseSize)}
}

// serviceError builds an *Error from a non-2xx answer. It understands the
// RFC 6749 error body, CSP's {"statusCode","message","cspErrorCode",
// "requestId"} and Splunk's {"code","message"}, and degrades to a
// description of the body when it is not JSON (an HTML error page from a
// load balancer, say).
func (c call) serviceError(resp *http.Response, body []byte) *Error {
	e := &Error{Op: c.op, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var b struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Message          string `json:"message"`
		CSPErrorCode     string `json:"cspErrorCode"`
		RequestID        string `json:"requestId"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		e.Message = describeBody(resp, body)
	} else {
		e.Code = firstNonEmpty(b.Error, b.CSPErrorCode)
		e.Message = firstNonEmpty(b.ErrorDescription, b.Message)
		e.RequestID = b.RequestID
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-Id")
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Message = "redirected to " + resp.Header.Get("Location") + "; redirects from an identity service are not followed: check the configured URL"
	}
	e.Code = clean(e.Code, c.redact)
	e.Message = clean(e.Message, c.redact)
	e.RequestID = clean(e.RequestID, c.redact)
	return e
}

func describeBody(resp *http.Response, body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty answer"
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "" {
		ct = "no Content-Type"
	}
	return fmt.Sprintf("answer is not JSON (%s, %d bytes)", ct, len(body))
}

// parseToken reads an RFC 6749 section 5.1 success body, which CSP also
// uses. issued is when the request was sent: the lifetime counts from then,
// so the time spent on the wire is on the safe side. A missing expires_in
// means defaultTTL, never "forever".
func (c call) parseToken(body []byte, issued time.Time, defaultTTL time.Duration) (Token, error) {
	var r struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Token{}, &Error{Op: c.op, Status: http.StatusOK, Message: "answer is not a JSON token response: " + jsonProblem(err)}
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		return Token{}, &Error{Op: c.op, Status: http.StatusOK, Message: fmt.Sprintf("token_type %q is not bearer", clean(r.TokenType, c.redact))}
	}
	if err := checkToken(r.AccessToken); err != nil {
		return Token{}, &Error{Op: c.op, Status: http.StatusOK, Message: err.Error()}
	}
	ttl, err := parseExpiresIn(r.ExpiresIn, defaultTTL)
	if err != nil {
		return Token{}, &Error{Op: c.op, Status: http.StatusOK, Message: err.Error()}
	}
	return Token{Value: secret.New(r.AccessToken), Expiry: issued.Add(ttl)}, nil
}

// checkToken refuses tokens that cannot be put in a header safely.
func checkToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("answer has no access_token")
	case len(tok) > maxTokenSize:
		return fmt.Errorf("access_token is longer than %d bytes", maxTokenSize)
	}
	for i := 0; i < len(tok); i++ {
		// Visible ASCII only: a CR or LF would split the header, and a
		// space or non-ASCII byte is not a token68 character.
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return errors.New("access_token contains characters not allowed in a header")
		}
	}
	return nil
}

// parseExpiresIn accepts expires_in as a JSON number or, leniently, as a
// string holding one (seen from some providers). Absent or null means
// defaultTTL. Zero and negative lifetimes are refused: such a token is
// already expired, and credproxy never sends an expired token.
func parseExpiresIn(raw json.RawMessage, defaultTTL time.Duration) (time.Duration, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return defaultTTL, nil
	}
	if unq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(unq)
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) {
		return 0, fmt.Errorf("expires_in %.40q is not a number of seconds", s)
	}
	switch {
	case secs <= 0:
		return 0, fmt.Errorf("expires_in %v: the token is already expired", secs)
	case secs >= MaxLifetime.Seconds():
		return MaxLifetime, nil
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// jsonProblem describes a JSON syntax error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type (%s)", te.Field, te.Value)
	}
	return "cannot decode"
}

// clean makes a service-provided string safe to log: credentials it echoes
// are replaced, control characters (log injection) become spaces, and the
// length is bounded.
func clean(s string, redact []secret.Secret) string {
	for _, r := range redact {
		if len(r.Reveal()) >= 4 {
			s = strings.ReplaceAll(s, r.Reveal(), "[redacted]")
		}
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxMessageLen {
		s = strings.ToValidUTF8(s[:maxMessageLen], "") + "..."
	}
	return strings.TrimSpace(s)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
