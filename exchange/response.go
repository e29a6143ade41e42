package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// maxMessageLen bounds a service message carried in an error and logged:
// what secret.Redactor.Clean keeps.
const maxMessageLen = secret.MaxCleanLen

// withAnswer returns c with the tokens found in an answer's body added
// to what is scrubbed: a token in an answer credproxy refuses is a
// credential as much as one it sent, and a service may repeat it in a
// field that is quoted.
func (c call) withAnswer(body []byte) call {
	var t struct {
		AccessToken  string `json:"access_token"`
		SessionToken string `json:"accessToken"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
		// Token is where CSP's api-tokens/details answer may carry the
		// API token itself (docs/protocols.md 1e).
		Token string `json:"token"`
	}
	if json.Unmarshal(body, &t) != nil {
		form, _ := url.ParseQuery(string(body))
		t.AccessToken, t.RefreshToken, t.IDToken, t.Token = form.Get("access_token"), form.Get("refresh_token"), form.Get("id_token"), form.Get("token")
	}
	for _, v := range []string{t.AccessToken, t.SessionToken, t.RefreshToken, t.IDToken, t.Token} {
		// One shorter than a piece is no real token, and redacting it
		// whole would take out letters of every word.
		if len(v) >= secret.PieceLen {
			c.sent = c.sent.With(secret.New(v))
		}
	}
	return c
}

// fail returns an *Error for an answer credproxy cannot use. Whatever msg
// quotes of the answer has been scrubbed (with clean) before it was put
// in: scrubbing the whole message would also take pieces of credproxy's
// own words out when a credential is short.
func (c call) fail(status int, msg string) *Error {
	return &Error{Op: c.op, Status: status, Message: msg}
}

// transportError is a failure to get an answer: its text is net/http's,
// scrubbed of the credentials sent, since net/http quotes what a broken
// service sent (a malformed status or header line, an HTTP/2 GOAWAY's
// debug data). It unwraps to the context error or errno in the chain
// only, whose texts are fixed, so that errors.Is still tells a deadline
// or a refused connection.
type transportError struct {
	msg    string
	causes []error
}

func (e *transportError) Error() string   { return e.msg }
func (e *transportError) Unwrap() []error { return e.causes }

// transportFailure wraps err from sending the request or reading the
// answer as a *transportError for op.
func (c call) transportFailure(what string, err error) error {
	te := &transportError{msg: c.op + ": " + what + secret.NewRedactor(c.sent).Clean(err.Error())}
	for _, sentinel := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, sentinel) {
			te.causes = append(te.causes, sentinel)
		}
	}
	if errno, ok := errors.AsType[syscall.Errno](err); ok {
		te.causes = append(te.causes, errno)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded) {
		te.causes = append(te.causes, os.ErrDeadlineExceeded) // a net.Error that says Timeout
	}
	return te
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
// RFC 6749 error body (JSON, or form-encoded as some services send it and
// golang.org/x/oauth2 reads it), CSP's {"statusCode","message","cspErrorCode",
// "requestId"} and Splunk's {"code","message"}, and degrades to a
// description of the body when it is not JSON (an HTML error page from a
// load balancer, say).
func (c call) serviceError(resp *http.Response, body []byte) *Error {
	r := secret.NewRedactor(c.withAnswer(body).sent)
	e := &Error{Op: c.op, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var b struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Message          string `json:"message"`
		CSPErrorCode     string `json:"cspErrorCode"`
		RequestID        string `json:"requestId"`
	}
	// Each string the service sent is scrubbed as it is taken, before it
	// is combined with anything.
	if err := json.Unmarshal(body, &b); err != nil {
		if code, desc, ok := formError(resp, body); ok {
			e.Code, e.Message = r.Clean(code), r.Clean(desc)
		} else {
			e.Message = describeBody(resp, body, r)
		}
	} else {
		e.Code = r.Clean(firstNonEmpty(b.Error, b.CSPErrorCode))
		e.Message = r.Clean(firstNonEmpty(b.ErrorDescription, b.Message))
		e.RequestID = r.Clean(b.RequestID)
	}
	if e.RequestID == "" {
		e.RequestID = r.Clean(resp.Header.Get("X-Request-Id"))
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Message = "redirected to " + r.Clean(resp.Header.Get("Location")) + "; redirects from an identity service are not followed: check the configured URL"
	}
	return e
}

// formError reads an RFC 6749 error sent form-encoded
// (error=...&error_description=...) under the media types that
// golang.org/x/oauth2 parses as a form. ok is false for any other answer,
// or a form without an error code.
func formError(resp *http.Response, body []byte) (code, desc string, ok bool) {
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" && ct != "text/plain" {
		return "", "", false
	}
	v, err := url.ParseQuery(string(body))
	if err != nil || v.Get("error") == "" {
		return "", "", false
	}
	return v.Get("error"), v.Get("error_description"), true
}

// describeBody says what a non-JSON answer was, quoting nothing of it but
// its media type, scrubbed.
func describeBody(resp *http.Response, body []byte, r *secret.Redactor) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty answer"
	}
	ct, _, _ := mime.ParseMediaType(r.Clean(resp.Header.Get("Content-Type")))
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
	c = c.withAnswer(body)
	var r struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Token{}, c.fail(http.StatusOK, "answer is not a JSON token response: "+jsonProblem(err, secret.NewRedactor(c.sent)))
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		return Token{}, c.fail(http.StatusOK, notBearer(r.TokenType, secret.NewRedactor(c.sent)))
	}
	if err := checkToken(r.AccessToken); err != nil {
		return Token{}, c.fail(http.StatusOK, err.Error())
	}
	ttl, err := parseExpiresIn(r.ExpiresIn, defaultTTL, secret.NewRedactor(c.sent))
	if err != nil {
		return Token{}, c.fail(http.StatusOK, err.Error())
	}
	return Token{Value: secret.New(r.AccessToken), Expiry: issued.Add(ttl)}, nil
}

// notBearer is the message for a token_type other than bearer, which
// quotes the service's value scrubbed.
func notBearer(tokenType string, r *secret.Redactor) string {
	return fmt.Sprintf("token_type %q is not bearer", r.Clean(tokenType))
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
func parseExpiresIn(raw json.RawMessage, defaultTTL time.Duration, r *secret.Redactor) (time.Duration, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return defaultTTL, nil
	}
	if unq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(unq)
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) {
		return 0, fmt.Errorf("expires_in %.40q is not a number of seconds", r.Clean(s))
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

// jsonProblem describes a JSON syntax error quoting nothing of the input
// but the kind of a value of the wrong type (a number's digits among
// them), scrubbed.
func jsonProblem(err error, r *secret.Redactor) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type (%s)", te.Field, r.Clean(te.Value))
	}
	return "cannot decode"
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
