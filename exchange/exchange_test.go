package exchange

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/secret"
)

// recorded is what a fake token endpoint saw.
type recorded struct {
	Method, Path, ContentType, Accept, Authorization string
	Form                                             url.Values
}

// fakeEndpoint answers every request with status and body and records it.
type fakeEndpoint struct {
	mu     sync.Mutex
	got    []recorded
	status int
	header http.Header
	body   string
}

func (f *fakeEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(b))
	f.mu.Lock()
	f.got = append(f.got, recorded{
		Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"),
		Accept: r.Header.Get("Accept"), Authorization: r.Header.Get("Authorization"), Form: form,
	})
	status, body := f.status, f.body
	for k, v := range f.header {
		w.Header()[k] = v
	}
	f.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeEndpoint) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.got...)
}

const okBody = `{"id_token":"idt","token_type":"bearer","expires_in":1799,"scope":"*","access_token":"at-123.abc","refresh_token":"rt"}`

func startFake(t *testing.T, f *fakeEndpoint) *url.URL {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func withPath(u *url.URL, p string) *url.URL {
	c := *u
	c.Path = p
	return &c
}

func TestCSPAPITokenRequest(t *testing.T) {
	tcs := []struct {
		desc string
		path string // base URL path
	}{
		{desc: "bare base", path: ""},
		{desc: "trailing slash", path: "/"},
		{desc: "base with a prefix", path: "/idp/"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			f := &fakeEndpoint{body: okBody}
			base := startFake(t, f)
			src := &CSPAPIToken{
				BaseURL:    withPath(base, tc.path),
				APIToken:   secret.Ref{Value: secret.New("user-api-token+/="), Var: "CREDPROXY_CSP_API_TOKEN"},
				Client:     NewHTTPClient(),
				DefaultTTL: time.Minute,
			}
			before := time.Now()
			tok, err := src.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			wantPath := strings.TrimSuffix(tc.path, "/") + "/csp/gateway/am/api/auth/api-tokens/authorize"
			want := []recorded{{
				Method: "POST", Path: wantPath, ContentType: "application/x-www-form-urlencoded",
				Accept: "application/json", Form: url.Values{"api_token": {"user-api-token+/="}},
			}}
			if diff := cmp.Diff(want, f.requests()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if tok.Value.Reveal() != "at-123.abc" {
				t.Errorf("token = %s, want the access_token", tok.Value.Fingerprint())
			}
			if lo, hi := before.Add(1799*time.Second), time.Now().Add(1799*time.Second); tok.Expiry.Before(lo) || tok.Expiry.After(hi) {
				t.Errorf("expiry %v not in [%v, %v]", tok.Expiry, lo, hi)
			}
		})
	}
}

func TestCSPOAuthAppRequest(t *testing.T) {
	tcs := []struct {
		desc, id, secret, org string
		wantAuth              string
		wantForm              url.Values
	}{
		{
			desc: "PROTOCOLS test vector", id: "appId", secret: "appSecret",
			wantAuth: "Basic YXBwSWQ6YXBwU2VjcmV0",
			wantForm: url.Values{"grant_type": {"client_credentials"}},
		},
		{
			// Raw: base64("appId:a+b/c=d"). The RFC 6749 form-encoded
			// variant would be base64("appId:a%2Bb%2Fc%3Dd").
			desc: "secret with + / = is sent raw", id: "appId", secret: "a+b/c=d",
			wantAuth: "Basic YXBwSWQ6YStiL2M9ZA==",
			wantForm: url.Values{"grant_type": {"client_credentials"}},
		},
		{
			desc: "orgId only when set", id: "appId", secret: "appSecret", org: "org-1",
			wantAuth: "Basic YXBwSWQ6YXBwU2VjcmV0",
			wantForm: url.Values{"grant_type": {"client_credentials"}, "orgId": {"org-1"}},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			f := &fakeEndpoint{body: okBody}
			base := startFake(t, f)
			src := &CSPOAuthApp{
				BaseURL: withPath(base, "/"), ClientID: tc.id, OrgID: tc.org,
				ClientSecret: secret.Ref{Value: secret.New(tc.secret), Var: "CREDPROXY_CSP_CLIENT_SECRET"},
				Client:       NewHTTPClient(), DefaultTTL: time.Minute,
			}
			if _, err := src.Fetch(context.Background()); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := []recorded{{
				Method: "POST", Path: "/csp/gateway/am/api/auth/authorize", ContentType: "application/x-www-form-urlencoded",
				Accept: "application/json", Authorization: tc.wantAuth, Form: tc.wantForm,
			}}
			if diff := cmp.Diff(want, f.requests()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServiceErrors(t *testing.T) {
	const apiToken = "s3cret-api-token-value"
	tcs := []struct {
		desc      string
		status    int
		header    http.Header
		body      string
		want      Error
		permanent bool
	}{
		{
			desc: "CSP 400 bad api token", status: 400,
			body: `{"statusCode":400,"message":"invalid_grant: Invalid refresh token: s3cret-api-token-value","cspErrorCode":"","requestId":"req-42"}`,
			want: Error{Status: 400, Message: "invalid_grant: Invalid refresh token: [redacted]", RequestID: "req-42"}, permanent: true,
		},
		{
			desc: "RFC 6749 401 invalid_client", status: 401,
			body: `{"error":"invalid_client","error_description":"Client authentication failed"}`,
			want: Error{Status: 401, Code: "invalid_client", Message: "Client authentication failed"}, permanent: true,
		},
		{
			desc: "HTML 502 from a load balancer", status: 502, header: http.Header{"X-Request-Id": {"lb-7"}},
			body: `<html><body>Bad Gateway</body></html>`,
			want: Error{Status: 502, Message: "answer is not JSON (application/json, 37 bytes)", RequestID: "lb-7"},
		},
		{
			desc: "429 with Retry-After", status: 429, header: http.Header{"Retry-After": {"17"}},
			body: `{"message":"slow down"}`,
			want: Error{Status: 429, Message: "slow down", RetryAfter: 17 * time.Second},
		},
		{
			desc: "redirect is not followed", status: 302, header: http.Header{"Location": {"https://login.example/"}},
			want:      Error{Status: 302, Message: "redirected to https://login.example/; redirects from an identity service are not followed: check the configured URL"},
			permanent: true,
		},
		{
			desc: "log injection is neutralised", status: 400,
			body: `{"message":"bad\nlevel=info fake line"}`,
			want: Error{Status: 400, Message: "bad level=info fake line"}, permanent: true,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			f := &fakeEndpoint{status: tc.status, header: tc.header, body: tc.body}
			src := &CSPAPIToken{BaseURL: startFake(t, f), APIToken: secret.Ref{Value: secret.New(apiToken)}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
			_, err := src.Fetch(context.Background())
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("error %v is not an *Error", err)
			}
			tc.want.Op = "csp api-token exchange"
			if diff := cmp.Diff(&tc.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", !tc.permanent, tc.permanent)
			}
			if strings.Contains(err.Error(), apiToken) {
				t.Errorf("error leaks the api token: %v", err)
			}
		})
	}
}

func TestTokenResponses(t *testing.T) {
	const ttl = 7 * time.Minute
	tcs := []struct {
		desc    string
		body    string
		wantTTL time.Duration
		wantErr string
	}{
		{desc: "number", body: `{"access_token":"a","expires_in":1799}`, wantTTL: 1799 * time.Second},
		{desc: "string number", body: `{"access_token":"a","expires_in":"60"}`, wantTTL: time.Minute},
		{desc: "fractional", body: `{"access_token":"a","expires_in":1.5}`, wantTTL: 1500 * time.Millisecond},
		{desc: "missing uses the default", body: `{"access_token":"a"}`, wantTTL: ttl},
		{desc: "null uses the default", body: `{"access_token":"a","expires_in":null}`, wantTTL: ttl},
		{desc: "absurdly large is capped", body: `{"access_token":"a","expires_in":1e300}`, wantTTL: MaxLifetime},
		{desc: "zero", body: `{"access_token":"a","expires_in":0}`, wantErr: "already expired"},
		{desc: "negative", body: `{"access_token":"a","expires_in":-5}`, wantErr: "already expired"},
		{desc: "word", body: `{"access_token":"a","expires_in":"soon"}`, wantErr: "not a number of seconds"},
		{desc: "no access_token", body: `{"token_type":"bearer","expires_in":60}`, wantErr: "no access_token"},
		{desc: "access_token not a string", body: `{"access_token":5}`, wantErr: "wrong type"},
		{desc: "header injection", body: `{"access_token":"a\r\nX-Evil: 1"}`, wantErr: "not allowed in a header"},
		{desc: "not bearer", body: `{"access_token":"a","token_type":"mac"}`, wantErr: "not bearer"},
		{desc: "malformed JSON", body: `{"access_token":`, wantErr: "not a JSON token response"},
		{desc: "HTML page", body: `<html>ok</html>`, wantErr: "not a JSON token response"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			issued := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			tok, err := call{op: "test"}.parseToken([]byte(tc.body), issued, ttl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if IsPermanent(err) {
					t.Errorf("a bad 200 answer must be transient")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Expiry.Sub(issued); got != tc.wantTTL {
				t.Errorf("lifetime = %v, want %v", got, tc.wantTTL)
			}
		})
	}
}

func TestOversizedAnswer(t *testing.T) {
	f := &fakeEndpoint{body: `{"access_token":"` + strings.Repeat("a", MaxResponseSize) + `"}`}
	src := &CSPAPIToken{BaseURL: startFake(t, f), APIToken: secret.Ref{Value: secret.New("t")}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
	_, err := src.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want a size error", err)
	}
}

func TestSecretFileReadAtEveryExchange(t *testing.T) {
	f := &fakeEndpoint{body: okBody}
	path := filepath.Join(t.TempDir(), "token")
	src := &CSPAPIToken{BaseURL: startFake(t, f), APIToken: secret.Ref{File: path, Var: "CREDPROXY_CSP_API_TOKEN_FILE"}, Client: NewHTTPClient(), DefaultTTL: time.Minute}

	_, err := src.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "CREDPROXY_CSP_API_TOKEN_FILE") {
		t.Fatalf("missing file: err = %v, want it to name the variable", err)
	}
	for _, v := range []string{"first\n", "second"} {
		if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	reqs := f.requests()
	if got := []string{reqs[0].Form.Get("api_token"), reqs[1].Form.Get("api_token")}; !cmp.Equal(got, []string{"first", "second"}) {
		t.Errorf("api tokens sent = %q, want the file's content at each exchange", got)
	}
}

func TestStatic(t *testing.T) {
	tok, err := (&Static{Token: secret.Ref{Value: secret.New("wf-token")}}).Fetch(context.Background())
	if err != nil || tok.Value.Reveal() != "wf-token" || !tok.Expiry.IsZero() {
		t.Fatalf("Fetch = %v, %v; want the token without expiry", tok, err)
	}
	if _, err := (&Static{Token: secret.Ref{Var: "CREDPROXY_TOKEN"}}).Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "CREDPROXY_TOKEN") {
		t.Fatalf("empty: err = %v, want it to name the variable", err)
	}
}

func TestContextBoundsSlowAnswer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":`)
		w.(http.Flusher).Flush()
		select { // drip: never finish the body
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	u, _ := url.Parse(srv.URL)
	src := &CSPAPIToken{BaseURL: u, APIToken: secret.Ref{Value: secret.New("t")}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := src.Fetch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context deadline", err)
	}
}
