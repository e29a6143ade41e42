package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// faultAPIToken is the credential the fault tests send; distinctive, so a
// leak is found by logtest.
const faultAPIToken = "flt-ApiTok-9f8e7d6c5b4a"

// canned writes a canned answer: status, Content-Type and body.
func canned(status int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// refusedURL returns the URL of a loopback port that was just closed:
// connecting to it is refused.
func refusedURL(t *testing.T) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &url.URL{Scheme: "http", Host: addr}
}

// TestTokenEndpointFaults drives one CSP api-token exchange against a real
// HTTP fake on loopback per fault and checks the error credproxy gets:
// its type, status, the service's message, whether it is permanent (which
// sets the backoff in tokencache) and the Retry-After asked for. Hangs and
// slow-drip bodies are bounded by the caller's deadline, which tokencache
// sets from EXCHANGE_TIMEOUT.
func TestTokenEndpointFaults(t *testing.T) {
	const deadline = 300 * time.Millisecond
	const defaultTTL = 7 * time.Minute
	cspBody := func(status int, msg string) string {
		return `{"statusCode":` + strconv.Itoa(status) + `,"message":"` + msg + `","cspErrorCode":"","requestId":"req-` + strconv.Itoa(status) + `"}`
	}
	tcs := []struct {
		desc    string
		handler http.Handler // nil: connection refused
		// On success, wantTTL is the lifetime. On failure, wantStatus is
		// the *Error status (0: not an *Error) and wantMsg a piece of the
		// error string.
		wantTTL    time.Duration
		wantStatus int
		wantMsg    string
		wantIs     error
		permanent  bool
		retryAfter time.Duration
	}{
		{desc: "connection refused", wantIs: syscall.ECONNREFUSED, wantMsg: "connection refused"},
		// The fakes read the request body first: only then does net/http
		// notice that the client hung up and cancel r.Context().
		{desc: "hang", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}),
			wantIs: context.DeadlineExceeded},
		{desc: "slow-drip body", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"access_token":"drip`)
			for {
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
					_, _ = io.WriteString(w, "x")
				}
			}
		}), wantIs: context.DeadlineExceeded},
		{desc: "500", handler: canned(500, "application/json", cspBody(500, "Internal Server Error")),
			wantStatus: 500, wantMsg: "HTTP 500: Internal Server Error (requestId req-500)"},
		{desc: "502 HTML page from a load balancer", handler: canned(502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"),
			wantStatus: 502, wantMsg: "HTTP 502: answer is not JSON (text/html, 50 bytes)"},
		{desc: "503 with Retry-After", handler: canned(503, "application/json", cspBody(503, "maintenance"), "Retry-After", "12"),
			wantStatus: 503, wantMsg: "HTTP 503: maintenance", retryAfter: 12 * time.Second},
		{desc: "429 with Retry-After", handler: canned(429, "application/json", `{"message":"Too many requests"}`, "Retry-After", "30"),
			wantStatus: 429, wantMsg: "HTTP 429: Too many requests", retryAfter: 30 * time.Second},
		{desc: "400 bad credential, echoed", handler: canned(400, "application/json", cspBody(400, "invalid_grant: Invalid refresh token: "+faultAPIToken)),
			wantStatus: 400, wantMsg: "HTTP 400: invalid_grant: Invalid refresh token: [redacted] (requestId req-400)", permanent: true},
		{desc: "401 bad credential", handler: canned(401, "application/json", `{"error":"invalid_client","error_description":"Client authentication failed"}`),
			wantStatus: 401, wantMsg: "HTTP 401 invalid_client: Client authentication failed", permanent: true},
		{desc: "200 malformed JSON", handler: canned(200, "application/json", `{"access_token":"a",`),
			wantStatus: 200, wantMsg: "HTTP 200: answer is not a JSON token response: syntax error at byte 20"},
		{desc: "200 HTML error page", handler: canned(200, "text/html", "<html>Sign in</html>"),
			wantStatus: 200, wantMsg: "HTTP 200: answer is not a JSON token response: syntax error at byte 1"},
		{desc: "200 without access_token", handler: canned(200, "application/json", `{"token_type":"bearer","expires_in":1799}`),
			wantStatus: 200, wantMsg: "HTTP 200: answer has no access_token"},
		{desc: "expires_in missing", handler: canned(200, "application/json", `{"access_token":"at-1"}`), wantTTL: defaultTTL},
		{desc: "expires_in 0", handler: canned(200, "application/json", `{"access_token":"at-1","expires_in":0}`),
			wantStatus: 200, wantMsg: "HTTP 200: expires_in 0: the token is already expired"},
		{desc: "expires_in negative", handler: canned(200, "application/json", `{"access_token":"at-1","expires_in":-60}`),
			wantStatus: 200, wantMsg: "HTTP 200: expires_in -60: the token is already expired"},
		{desc: "expires_in absurdly large", handler: canned(200, "application/json", `{"access_token":"at-1","expires_in":99999999999999}`), wantTTL: MaxLifetime},
		{desc: "expires_in a numeric string", handler: canned(200, "application/json", `{"access_token":"at-1","expires_in":"120"}`), wantTTL: 2 * time.Minute},
		{desc: "expires_in a word", handler: canned(200, "application/json", `{"access_token":"at-1","expires_in":"forever"}`),
			wantStatus: 200, wantMsg: `HTTP 200: expires_in "forever" is not a number of seconds`},
		{desc: "body over the size cap", handler: canned(200, "application/json", `{"access_token":"`+strings.Repeat("a", MaxResponseSize)+`"}`),
			wantStatus: 200, wantMsg: "HTTP 200: answer larger than 1048576 bytes"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			h := logtest.NewHygiene(t, faultAPIToken)
			base := refusedURL(t)
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				t.Cleanup(srv.Close)
				base, _ = url.Parse(srv.URL)
			}
			src := &CSPAPIToken{BaseURL: base, APIToken: secret.Ref{Value: secret.New(faultAPIToken)}, Client: NewHTTPClient(), DefaultTTL: defaultTTL}
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			before := time.Now()
			tok, err := src.Fetch(ctx)
			took := time.Since(before)
			h.Err("error", err)
			// Bounded by the deadline (with generous slack for a busy
			// machine): nothing waits for the service's own timeouts.
			if took > deadline+5*time.Second {
				t.Errorf("Fetch took %v with a %v deadline", took, deadline)
			}
			if tc.wantTTL != 0 {
				if err != nil {
					t.Fatalf("err = %v, want a token", err)
				}
				if got := tok.Expiry.Sub(before); got < tc.wantTTL-time.Second || got > tc.wantTTL+time.Second {
					t.Errorf("lifetime %v, want %v", got, tc.wantTTL)
				}
				return
			}
			if err == nil {
				t.Fatalf("got a token expiring %v, want an error", tok.Expiry)
			}
			if !strings.Contains(err.Error(), "csp api-token exchange") || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q, want it to name the exchange and contain %q", err, tc.wantMsg)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			var e *Error
			if got := errors.As(err, &e); got != (tc.wantStatus != 0) || got && e.Status != tc.wantStatus {
				t.Errorf("error %#v, want an *Error with status %d", err, tc.wantStatus)
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", !tc.permanent, tc.permanent)
			}
			if RetryAfter(err) != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", RetryAfter(err), tc.retryAfter)
			}
		})
	}
}

// TestOAuth2ExpiresInFaults: the generic OAuth 2.0 kinds, whose answers
// golang.org/x/oauth2 parses, treat odd lifetimes as CSP does.
func TestOAuth2ExpiresInFaults(t *testing.T) {
	const defaultTTL = 7 * time.Minute
	tcs := []struct {
		desc, contentType, body string
		wantTTL                 time.Duration
		wantMsg                 string
	}{
		{desc: "missing", body: `{"access_token":"at-1","token_type":"Bearer"}`, wantTTL: defaultTTL},
		{desc: "0", body: `{"access_token":"at-1","token_type":"Bearer","expires_in":0}`, wantMsg: "HTTP 200: expires_in 0: the token is already expired"},
		{desc: "negative", body: `{"access_token":"at-1","token_type":"Bearer","expires_in":-60}`, wantMsg: "HTTP 200: expires_in -60: the token is already expired"},
		{desc: "numeric string", body: `{"access_token":"at-1","token_type":"Bearer","expires_in":"120"}`, wantTTL: 2 * time.Minute},
		{desc: "string 0", body: `{"access_token":"at-1","token_type":"Bearer","expires_in":"0"}`, wantMsg: "already expired"},
		{desc: "form-encoded negative", contentType: "application/x-www-form-urlencoded", body: `access_token=at-1&token_type=bearer&expires_in=-5`, wantMsg: "already expired"},
		{desc: "absurdly large", body: `{"access_token":"at-1","token_type":"Bearer","expires_in":99999999999}`, wantTTL: MaxLifetime},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			u := serve(t, canned(200, ct, tc.body))
			src := &OAuth2ClientCredentials{OAuth2Client{TokenURL: u.String(), ClientID: "c", ClientSecret: secret.Ref{Value: secret.New("oauth-Cl13nt-s3cret")},
				Client: NewHTTPClient(), DefaultTTL: defaultTTL}}
			before := time.Now()
			tok, err := src.Fetch(context.Background())
			if tc.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) || IsPermanent(err) {
					t.Fatalf("err = %v, want a transient error containing %q", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Expiry.Sub(before); got < tc.wantTTL-time.Second || got > tc.wantTTL+time.Second {
				t.Errorf("lifetime %v, want %v", got, tc.wantTTL)
			}
		})
	}
}

// k8sSecretDir mimics how the kubelet projects a Secret into a volume:
// <dir>/<key> is a symlink to ..data/<key>, ..data a symlink to a
// timestamped directory holding the files. Update swaps ..data atomically.
type k8sSecretDir struct {
	dir string
	n   int
}

func newK8sSecretDir(t *testing.T, key, value string) *k8sSecretDir {
	t.Helper()
	d := &k8sSecretDir{dir: t.TempDir()}
	d.update(t, map[string]string{key: value})
	if err := os.Symlink(filepath.Join("..data", key), filepath.Join(d.dir, key)); err != nil {
		t.Fatal(err)
	}
	return d
}

// update writes files into a new timestamped directory, points a new
// ..data_tmp symlink at it and renames that over ..data (one atomic step
// for readers), then removes the old directory, as the kubelet's atomic
// writer does.
func (d *k8sSecretDir) update(t *testing.T, files map[string]string) {
	t.Helper()
	d.n++
	ts := fmt.Sprintf("..2026_11_23_00_00_%02d.%09d", d.n, d.n)
	if err := os.Mkdir(filepath.Join(d.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(d.dir, ts, k), []byte(v), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(d.dir, "..data"))
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(d.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKubernetesSecretRotation: a *_FILE secret rotated the way the
// kubelet does it is sent at the next exchange; a key that disappears or
// an empty file gives an error naming the variable and the file, never
// the old or new content.
func TestKubernetesSecretRotation(t *testing.T) {
	const v1, v2 = "k8s-RotOne-11111111", "k8s-RotTwo-22222222"
	h := logtest.NewHygiene(t, v1, v2)
	f := &fakeEndpoint{body: okBody}
	d := newK8sSecretDir(t, "api-token", v1+"\n")
	src := &CSPAPIToken{BaseURL: startFake(t, f), APIToken: secret.Ref{File: filepath.Join(d.dir, "api-token"), Var: "CREDPROXY_CSP_API_TOKEN_FILE"},
		Client: NewHTTPClient(), DefaultTTL: time.Minute}

	if _, err := src.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.update(t, map[string]string{"api-token": v2})
	if _, err := src.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if got := []string{reqs[0].Form.Get("api_token"), reqs[1].Form.Get("api_token")}; got[0] != v1 || got[1] != v2 {
		t.Fatalf("api tokens sent = %q, want the rotated value at the next exchange", got)
	}

	d.update(t, map[string]string{"other-key": "x"})
	_, err := src.Fetch(context.Background())
	h.Err("missing key error", err)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "CREDPROXY_CSP_API_TOKEN_FILE") || !strings.Contains(err.Error(), "api-token") {
		t.Errorf("missing key: err = %v, want not-exist naming the variable and the file", err)
	}
	d.update(t, map[string]string{"api-token": " \n"})
	_, err = src.Fetch(context.Background())
	h.Err("empty file error", err)
	if !errors.Is(err, secret.ErrEmpty) || !strings.Contains(err.Error(), "CREDPROXY_CSP_API_TOKEN_FILE") {
		t.Errorf("empty file: err = %v, want ErrEmpty naming the variable", err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests sent; a secret that cannot be read must not be exchanged", n)
	}
}

// TestOAuth2EndpointFaults: the generic OAuth 2.0 kinds report the same
// faults with the status and the service's message, although
// golang.org/x/oauth2 parses their answers.
func TestOAuth2EndpointFaults(t *testing.T) {
	const clientSecret = "oauth-Flt-s3cret-778899"
	tcs := []struct {
		desc       string
		handler    http.Handler
		wantStatus int
		wantMsg    string
		permanent  bool
		retryAfter time.Duration
	}{
		{desc: "503 HTML page", handler: canned(503, "text/html", "<html>down</html>"),
			wantStatus: 503, wantMsg: "HTTP 503: answer is not JSON (text/html, 17 bytes)"},
		{desc: "429 with Retry-After", handler: canned(429, "application/json", `{"error":"slow_down","error_description":"Too many requests"}`, "Retry-After", "30"),
			wantStatus: 429, wantMsg: "HTTP 429 slow_down: Too many requests", retryAfter: 30 * time.Second},
		{desc: "401 echoing the secret", handler: canned(401, "application/json", `{"error":"invalid_client","error_description":"bad secret `+clientSecret+`"}`),
			wantStatus: 401, wantMsg: "HTTP 401 invalid_client: bad secret [redacted]", permanent: true},
		{desc: "400 form-encoded error", handler: canned(400, "application/x-www-form-urlencoded", "error=invalid_grant&error_description=Bad+verification+code.&error_uri=https%3A%2F%2Fdocs.example%2Ferr"),
			wantStatus: 400, wantMsg: "HTTP 400 invalid_grant: Bad verification code.", permanent: true},
		{desc: "401 form-encoded, echoing the secret", handler: canned(401, "application/x-www-form-urlencoded; charset=utf-8", "error=invalid_client&error_description=bad+secret+"+url.QueryEscape(clientSecret)),
			wantStatus: 401, wantMsg: "HTTP 401 invalid_client: bad secret [redacted]", permanent: true},
		{desc: "400 text/plain form", handler: canned(400, "text/plain", "error=invalid_request"),
			wantStatus: 400, wantMsg: "HTTP 400 invalid_request", permanent: true},
		{desc: "400 form without an error", handler: canned(400, "application/x-www-form-urlencoded", "status=bad"),
			wantStatus: 400, wantMsg: "HTTP 400: answer is not JSON (application/x-www-form-urlencoded, 10 bytes)", permanent: true},
		{desc: "200 malformed JSON", handler: canned(200, "application/json", `{"access_token":`),
			wantStatus: 200, wantMsg: "HTTP 200: answer is not a usable token response: cannot parse json"},
		{desc: "200 HTML page", handler: canned(200, "text/html", "<html>Sign in</html>"),
			wantStatus: 200, wantMsg: "HTTP 200: answer is not a usable token response"},
		{desc: "200 without access_token", handler: canned(200, "application/json", `{"token_type":"Bearer","expires_in":60}`),
			wantStatus: 200, wantMsg: "HTTP 200: answer has no access_token"},
		{desc: "200 with an error body", handler: canned(200, "application/json", `{"error":"invalid_grant","error_description":"expired"}`),
			wantStatus: 200, wantMsg: "HTTP 200 invalid_grant: expired"},
		{desc: "connection refused"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			h := logtest.NewHygiene(t, clientSecret)
			tokenURL := refusedURL(t).String() + "/token"
			if tc.handler != nil {
				tokenURL = serve(t, tc.handler).String() + "/token"
			}
			src := &OAuth2ClientCredentials{OAuth2Client{TokenURL: tokenURL, ClientID: "c", ClientSecret: secret.Ref{Value: secret.New(clientSecret)},
				Client: NewHTTPClient(), DefaultTTL: time.Minute}}
			_, err := src.Fetch(context.Background())
			h.Err("error", err)
			if err == nil || !strings.Contains(err.Error(), "oauth2 client-credentials exchange") || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantMsg)
			}
			var e *Error
			if got := errors.As(err, &e); got != (tc.wantStatus != 0) || got && e.Status != tc.wantStatus {
				t.Errorf("error %#v, want an *Error with status %d", err, tc.wantStatus)
			}
			if IsPermanent(err) != tc.permanent || RetryAfter(err) != tc.retryAfter {
				t.Errorf("permanent %v, Retry-After %v; want %v, %v", IsPermanent(err), RetryAfter(err), tc.permanent, tc.retryAfter)
			}
		})
	}
}
