package exchange

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// The echo tests run every kind against an identity service that repeats
// what it received (the Authorization header, the form or JSON body, a
// credential from it) in some encoding, in some part of its answer, and
// check that no piece of any credential sent comes back in the error.

// Credentials of the echo tests: '+', '/', '=', ':' and a non-ASCII letter,
// so that raw, form-encoded and base64 forms all differ; one shorter than
// 8 characters.
const (
	echoClientID     = "echo-client:1"
	echoClientSecret = "Cl+ent/S3cr=tÉ9x-abc"
	echoAPIToken     = "ApiT0ken/+=-echo-42xyz"
	echoRefreshToken = "rEfr3sh-t0k+n/echo-77"
	echoSubjectToken = "eyJhbGciOi.subject-t0k3n.sig-echo"
	echoPassword     = "pa55:w/rd+É"
	echoShortSecret  = "s+0rt"
)

// echoKind is one credential kind set up against base, with the
// credentials it sends.
type echoKind struct {
	name    string
	src     func(base *url.URL, dir string) Source
	secrets []string
}

func echoKinds() []echoKind {
	oc := func(base *url.URL, body bool, sec string) OAuth2Client {
		return OAuth2Client{TokenURL: base.String() + "/token", ClientID: echoClientID, ClientSecret: secret.Ref{Value: secret.New(sec)},
			AuthStyleBody: body, Client: NewHTTPClient(), DefaultTTL: time.Minute}
	}
	return []echoKind{
		{name: "csp api-token", secrets: []string{echoAPIToken}, src: func(base *url.URL, _ string) Source {
			return &CSPAPIToken{BaseURL: base, APIToken: secret.Ref{Value: secret.New(echoAPIToken)}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
		}},
		{name: "csp oauth-app", secrets: []string{echoClientSecret}, src: func(base *url.URL, _ string) Source {
			return &CSPOAuthApp{BaseURL: base, ClientID: echoClientID, ClientSecret: secret.Ref{Value: secret.New(echoClientSecret)}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
		}},
		{name: "csp oauth-app, short secret", secrets: []string{echoShortSecret}, src: func(base *url.URL, _ string) Source {
			return &CSPOAuthApp{BaseURL: base, ClientID: echoClientID, ClientSecret: secret.Ref{Value: secret.New(echoShortSecret)}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
		}},
		{name: "splunk session", secrets: []string{echoPassword}, src: func(base *url.URL, _ string) Source {
			return &SplunkSession{BaseURL: base, Email: "ops@example.com", Password: secret.Ref{Value: secret.New(echoPassword)}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
		}},
		{name: "oauth2 client-credentials, Basic", secrets: []string{echoClientSecret}, src: func(base *url.URL, _ string) Source {
			return &OAuth2ClientCredentials{oc(base, false, echoClientSecret)}
		}},
		{name: "oauth2 client-credentials, body", secrets: []string{echoClientSecret}, src: func(base *url.URL, _ string) Source {
			return &OAuth2ClientCredentials{oc(base, true, echoClientSecret)}
		}},
		{name: "oauth2 refresh-token", secrets: []string{echoClientSecret, echoRefreshToken}, src: func(base *url.URL, _ string) Source {
			return &OAuth2RefreshToken{OAuth2Client: oc(base, false, echoClientSecret), RefreshToken: secret.Ref{Value: secret.New(echoRefreshToken)}}
		}},
		{name: "oauth2 token exchange", secrets: []string{echoClientSecret, echoSubjectToken}, src: func(base *url.URL, dir string) Source {
			file := filepath.Join(dir, "subject")
			if err := os.WriteFile(file, []byte(echoSubjectToken), 0o600); err != nil {
				panic(err)
			}
			return &OAuth2TokenExchange{OAuth2Client: oc(base, true, echoClientSecret), SubjectTokenFile: file, SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt"}
		}},
	}
}

// echoShapes returns the ways a service could repeat what it received in
// req: the Authorization header and the body as they came, and each
// credential-bearing value in them in some encoding, case, piece or with
// a character inserted.
func echoShapes(req *http.Request, body string) map[string]string {
	shapes := map[string]string{}
	var values []string
	if auth := req.Header.Get("Authorization"); auth != "" {
		shapes["Authorization"] = auth
		shapes["Authorization QueryEscape"] = url.QueryEscape(auth)
		shapes["Authorization PathEscape"] = url.PathEscape(auth)
		shapes["Authorization lower"] = strings.ToLower(auth)
		b64 := strings.TrimPrefix(auth, "Basic ")
		values = append(values, b64)
		if dec, err := base64.StdEncoding.DecodeString(b64); err == nil {
			values = append(values, string(dec))
			if _, pw, ok := strings.Cut(string(dec), ":"); ok {
				values = append(values, pw)
				if unq, err := url.QueryUnescape(pw); err == nil {
					values = append(values, unq)
				}
			}
		}
	}
	shapes["body"] = body
	shapes["body QueryEscape"] = url.QueryEscape(body)
	shapes["body upper"] = strings.ToUpper(body)
	if form, err := url.ParseQuery(body); err == nil {
		for _, k := range []string{"api_token", "client_secret", "refresh_token", "subject_token"} {
			if v := form.Get(k); v != "" {
				values = append(values, v)
				shapes["form field "+k] = k + "=" + url.QueryEscape(v)
			}
		}
	}
	var js struct{ Password string }
	if json.Unmarshal([]byte(body), &js) == nil && js.Password != "" {
		values = append(values, js.Password)
	}
	for i, v := range values {
		for name, s := range valueShapes(v) {
			shapes["value "+strconv.Itoa(i)+" "+name] = s
		}
	}
	return shapes
}

func valueShapes(v string) map[string]string {
	half := len(v) / 2
	for !utf8Start(v, half) {
		half++
	}
	out := map[string]string{
		"raw":                         v,
		"QueryEscape":                 url.QueryEscape(v),
		"PathEscape":                  url.PathEscape(v),
		"QueryEscape twice":           url.QueryEscape(url.QueryEscape(v)),
		"upper":                       strings.ToUpper(v),
		"lower":                       strings.ToLower(v),
		"base64":                      base64.StdEncoding.EncodeToString([]byte(v)),
		"base64 raw URL":              base64.RawURLEncoding.EncodeToString([]byte(v)),
		"base64 QueryEscape":          url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(v))),
		"every byte %-encoded":        percentAll(v, "%%%02X"),
		"every byte %-encoded, lower": percentAll(v, "%%%02x"),
		"base64 after 1 byte":         base64.StdEncoding.EncodeToString([]byte("x" + v + "y")),
		"base64url after 2 bytes":     base64.RawURLEncoding.EncodeToString([]byte("u:" + v)),
		"control char inside":         v[:half] + "\x01" + v[half:],
		"NUL and DEL inside":          v[:half] + "\x00\x7f" + v[half:],
		"newline and tab inside":      v[:half] + "\n\t" + v[half:],
		"zero-width space inside":     v[:half] + "\u200b" + v[half:],
		"spaced out":                  strings.Join(strings.Split(v, ""), " "),
		"Go-quoted with a CTL":        strconv.Quote(v[:half] + "\x01" + v[half:]),
		"JSON-escaped":                jsonEscapeAll(v),
	}
	if len(v) >= 8 {
		out["prefix 8"] = v[:8]
		out["prefix 12 upper"] = strings.ToUpper(v[:min(12, len(v))])
		out["middle piece"] = v[len(v)/2-4 : len(v)/2+4]
	}
	return out
}

func utf8Start(s string, i int) bool { return i >= len(s) || s[i]&0xc0 != 0x80 }

// jsonEscapeAll writes every character of v as a \u escape.
func jsonEscapeAll(v string) string {
	var b strings.Builder
	for _, r := range v {
		b.WriteString(`\u`)
		b.WriteString(strconv.FormatInt(int64(0x10000+r), 16)[1:])
	}
	return b.String()
}

// echoPlacement is where in its answer the service puts the echo.
type echoPlacement struct {
	name string
	// answer writes the answer; echo is the shape, already escaped for
	// JSON where it goes into JSON.
	answer func(w http.ResponseWriter, echo string)
}

func jsonAnswer(status int, body string) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, echo string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		b, _ := json.Marshal(echo)
		_, _ = io.WriteString(w, strings.ReplaceAll(body, "ECHO", string(b[1:len(b)-1])))
	}
}

// rawAnswer writes bytes on the connection, bypassing net/http's checks,
// as a broken service or middlebox would.
func rawAnswer(head string) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, echo string) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString(strings.ReplaceAll(head, "ECHO", echo))
		_ = buf.Flush()
	}
}

func echoPlacements() []echoPlacement {
	header := func(status int, name string) func(http.ResponseWriter, string) {
		return rawAnswer("HTTP/1.1 " + strconv.Itoa(status) + " X\r\n" + name + ": ECHO\r\nContent-Length: 5\r\nConnection: close\r\n\r\n<html")
	}
	return []echoPlacement{
		{name: "CSP message", answer: jsonAnswer(400, `{"statusCode":400,"message":"invalid_grant: Invalid token: ECHO end","requestId":"r-1"}`)},
		{name: "error_description", answer: jsonAnswer(401, `{"error":"invalid_client","error_description":"ECHO"}`)},
		{name: "error", answer: jsonAnswer(400, `{"error":"ECHO"}`)},
		{name: "cspErrorCode", answer: jsonAnswer(400, `{"cspErrorCode":"ECHO","message":"m"}`)},
		{name: "requestId", answer: jsonAnswer(500, `{"message":"m","requestId":"ECHO"}`)},
		{name: "Splunk message", answer: jsonAnswer(400, `{"code":400,"message":"ECHO"}`)},
		{name: "200 error body", answer: jsonAnswer(200, `{"error":"invalid_grant","error_description":"ECHO"}`)},
		{name: "200 token_type", answer: jsonAnswer(200, `{"access_token":"at-1","accessToken":"at-1","token_type":"ECHO"}`)},
		{name: "200 expires_in", answer: jsonAnswer(200, `{"access_token":"at-1","accessToken":"at-1","expires_in":"ECHO"}`)},
		{name: "X-Request-Id", answer: header(502, "X-Request-Id")},
		{name: "Location", answer: header(302, "Location")},
		{name: "Content-Type", answer: header(502, "Content-Type")},
		{name: "malformed status line", answer: rawAnswer("HTTP/1.1 ECHO\r\n\r\n")},
		{name: "malformed header line", answer: rawAnswer("HTTP/1.1 400 Bad\r\nECHO\r\n\r\n")},
	}
}

// echoService answers each request with the chosen shape of what it
// received, at the chosen placement.
type echoService struct {
	mu        sync.Mutex
	shape     string
	placement echoPlacement
	shapes    []string // the shapes offered by the last request, sorted
	echoed    bool
}

func (e *echoService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	shapes := echoShapes(r, string(b))
	e.mu.Lock()
	e.shapes = slices.Sorted(mapKeys(shapes))
	echo, ok := shapes[e.shape]
	e.echoed = ok
	placement := e.placement
	e.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusTeapot)
		return
	}
	placement.answer(w, echo)
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestEchoedCredentialsAreRedacted: for every kind, every echo shape and
// every place in an answer, the error credproxy reports (which reaches
// logs, /readyz, the status page and 503 bodies) holds no 8-character
// piece of any credential sent, in any case, whatever control characters
// or spaces were inserted; a credential shorter than 8 characters does
// not appear at all.
func TestEchoedCredentialsAreRedacted(t *testing.T) {
	for _, kind := range echoKinds() {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			svc := &echoService{}
			base := serve(t, svc)
			src := kind.src(base, t.TempDir())
			// A first request learns which shapes this kind offers.
			_, _ = src.Fetch(context.Background())
			svc.mu.Lock()
			shapes := svc.shapes
			svc.mu.Unlock()
			for _, p := range echoPlacements() {
				for _, shape := range shapes {
					svc.mu.Lock()
					svc.shape, svc.placement = shape, p
					svc.mu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := src.Fetch(ctx)
					cancel()
					if err == nil {
						continue // e.g. a token_type that normalises to bearer
					}
					for _, e := range errorChain(err) {
						if leak := leakedPiece(e.Error(), kind.secrets); leak != "" {
							t.Errorf("%s in %s: error %q (in the chain of %q) holds %q", shape, p.name, e, err, leak)
						}
					}
				}
			}
		})
	}
}

// errorChain returns err and every error it wraps: a caller that unwraps
// must not find the text that the outer error scrubbed.
func errorChain(err error) []error {
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if next := u.Unwrap(); next != nil {
			out = append(out, errorChain(next)...)
		}
	case interface{ Unwrap() []error }:
		for _, next := range u.Unwrap() {
			out = append(out, errorChain(next)...)
		}
	}
	return out
}

// TestRedactionKeepsTheMessage: redaction takes out the credential, not
// the service's words around it.
func TestRedactionKeepsTheMessage(t *testing.T) {
	svc := &echoService{shape: "value 0 raw", placement: echoPlacements()[0]}
	src := &CSPAPIToken{BaseURL: serve(t, svc), APIToken: secret.Ref{Value: secret.New(echoAPIToken)}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
	_, err := src.Fetch(context.Background())
	want := "csp api-token exchange: HTTP 400: invalid_grant: Invalid token: [redacted] end (requestId r-1)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// percentAll percent-encodes every byte of v with format.
func percentAll(v, format string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		fmt.Fprintf(&b, format, v[i])
	}
	return b.String()
}

// leakedPiece returns the first piece of a secret that logtest finds in
// text (8 bytes, in any encoding, case and spacing ignored), or "". Text
// on either side of a "[redacted]" is checked apart: a piece that only
// forms across the marker is not in the output.
func leakedPiece(text string, secrets []string) string {
	for _, seg := range strings.Split(strings.TrimSuffix(text, "..."), "[redacted]") {
		if p, _ := logtest.Leak(seg, secrets...); p != "" {
			return p
		}
	}
	return ""
}

// TestTransportErrorsKeepTheirCause: a scrubbed transport error still
// tells a refused connection and a deadline, for every kind.
func TestTransportErrorsKeepTheirCause(t *testing.T) {
	hang := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	for _, tc := range []struct {
		desc string
		base *url.URL
		want error
	}{
		{desc: "refused", base: refusedURL(t), want: syscall.ECONNREFUSED},
		{desc: "deadline", base: hang, want: context.DeadlineExceeded},
	} {
		for kind, src := range everySource(t, tc.base, NewHTTPClient()) {
			t.Run(tc.desc+"/"+kind, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				if _, err := src.Fetch(ctx); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), kind) {
					t.Errorf("err = %v, want one that names %q and is %v", err, kind, tc.want)
				}
			})
		}
	}
}

// TestIssuedTokensNeverQuoted: a token in an answer that credproxy
// refuses (an access, refresh or ID token) is a credential too: when the
// service repeats it where a message is quoted, it is redacted.
func TestIssuedTokensNeverQuoted(t *testing.T) {
	const (
		at = "issued-Acc3ss-t0ken-9911"
		rt = "issued-Refr3sh-t0ken-7722"
		it = "issued-Id-t0ken-5533"
	)
	tokens := `"access_token":"` + at + `","accessToken":"` + at + `","refresh_token":"` + rt + `","id_token":"` + it + `"`
	bodies := map[string]struct {
		status int
		body   string
	}{
		"token_type echoes the access token":  {200, `{` + tokens + `,"token_type":"` + at + `"}`},
		"token_type echoes the refresh token": {200, `{` + tokens + `,"token_type":"x` + rt + `"}`},
		"expires_in echoes the ID token":      {200, `{` + tokens + `,"expires_in":"` + it + `"}`},
		"error body with the tokens":          {200, `{` + tokens + `,"error":"` + at + `","error_description":"` + rt + `"}`},
		"400 with the tokens":                 {400, `{` + tokens + `,"message":"` + at + " " + rt + " " + it + `"}`},
	}
	for desc, b := range bodies {
		base := serve(t, canned(b.status, "application/json", b.body))
		for kind, src := range everySource(t, base, NewHTTPClient()) {
			t.Run(desc+"/"+kind, func(t *testing.T) {
				_, err := src.Fetch(context.Background())
				if err == nil {
					return // a kind that ignores the field
				}
				if leak := leakedPiece(err.Error(), []string{at, rt, it}); leak != "" {
					t.Errorf("error %q holds %q", err, leak)
				}
			})
		}
	}
}
