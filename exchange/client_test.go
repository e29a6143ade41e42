package exchange

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/secret"
)

// hits counts the requests a fake receives.
type hits struct{ n atomic.Int32 }

func (h *hits) handler(t *testing.T, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.n.Add(1)
		t.Errorf("%s received %s %s: a credential left for a place it was not configured for", name, r.Method, r.URL)
		w.WriteHeader(http.StatusBadGateway)
	})
}

// everySource returns one Source of each kind that exchanges at base (the
// OAuth 2.0 kinds at base/token), sending its requests through client.
func everySource(t *testing.T, base *url.URL, client *http.Client) map[string]Source {
	t.Helper()
	sub := filepath.Join(t.TempDir(), "subject")
	if err := os.WriteFile(sub, []byte("subject-jwt-1"), 0o600); err != nil {
		t.Fatal(err)
	}
	oc := func() OAuth2Client {
		return OAuth2Client{TokenURL: base.String() + "/token", ClientID: "c", ClientSecret: secret.Ref{Value: secret.New("client-s3cret-1")}, Client: client, DefaultTTL: time.Minute}
	}
	return map[string]Source{
		"csp api-token":             &CSPAPIToken{BaseURL: base, APIToken: secret.Ref{Value: secret.New("api-t0ken-1")}, Client: client, DefaultTTL: time.Minute},
		"csp oauth-app":             &CSPOAuthApp{BaseURL: base, ClientID: "app", ClientSecret: secret.Ref{Value: secret.New("app-s3cret-1")}, Client: client, DefaultTTL: time.Minute},
		"splunk session":            &SplunkSession{BaseURL: base, Email: "ops@example.com", Password: secret.Ref{Value: secret.New("pa55word-1")}, Client: client, DefaultTTL: time.Minute},
		"oauth2 client-credentials": &OAuth2ClientCredentials{oc()},
		"oauth2 refresh-token":      &OAuth2RefreshToken{OAuth2Client: oc(), RefreshToken: secret.Ref{Value: secret.New("refresh-t0ken-1")}},
		"oauth2 token exchange":     &OAuth2TokenExchange{OAuth2Client: oc(), SubjectTokenFile: sub, SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt"},
	}
}

// TestNoClientIsAnError: a Source built without an HTTP client reports it
// as an error naming the mistake, for every kind. It never falls back to
// http.DefaultClient, which follows redirects and HTTPS_PROXY, and never
// panics.
func TestNoClientIsAnError(t *testing.T) {
	var proxyHits, targetHits hits
	proxySrv := httptest.NewServer(proxyHits.handler(t, "the environment's proxy"))
	t.Cleanup(proxySrv.Close)
	target := httptest.NewServer(targetHits.handler(t, "the redirect target"))
	t.Cleanup(target.Close)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(idp.Close)
	t.Setenv("HTTPS_PROXY", proxySrv.URL)
	t.Setenv("HTTP_PROXY", proxySrv.URL)
	t.Setenv("NO_PROXY", "")

	for _, tc := range []struct {
		desc    string
		client  *http.Client
		wantErr string
	}{
		{desc: "nil client", client: nil, wantErr: "no HTTP client given"},
		{desc: "client without a Transport", client: &http.Client{}, wantErr: "has no Transport"},
	} {
		for _, base := range []string{idp.URL, "http://idp.invalid"} {
			u, _ := url.Parse(base)
			for kind, src := range everySource(t, u, tc.client) {
				t.Run(tc.desc+"/"+kind+" "+base, func(t *testing.T) {
					checkNoClient(t, src, tc.wantErr)
				})
			}
		}
	}
	if proxyHits.n.Load() != 0 || targetHits.n.Load() != 0 {
		t.Errorf("proxy hit %d times, redirect target %d times; want none", proxyHits.n.Load(), targetHits.n.Load())
	}
}

func checkNoClient(t *testing.T, src Source, wantErr string) {
	t.Helper()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic: %v", p)
			}
		}()
		_, err = src.Fetch(context.Background())
	}()
	if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "programming error") {
		t.Errorf("err = %v, want it to say %q", err, wantErr)
	}
}

// TestRedirectsNeverFollowed: a redirect from the identity service comes
// back as an *Error, never followed with the credential, even when the
// client given would follow it.
func TestRedirectsNeverFollowed(t *testing.T) {
	var targetHits hits
	target := httptest.NewServer(targetHits.handler(t, "the redirect target"))
	t.Cleanup(target.Close)
	idp := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	following := &http.Client{Transport: NewHTTPClient().Transport} // default CheckRedirect: follows
	for name, client := range map[string]*http.Client{"NewHTTPClient": NewHTTPClient(), "a client that follows": following} {
		for kind, src := range everySource(t, idp, client) {
			t.Run(name+"/"+kind, func(t *testing.T) {
				_, err := src.Fetch(context.Background())
				e, ok := err.(*Error)
				if !ok || e.Status != http.StatusTemporaryRedirect || !strings.Contains(e.Message, "not followed") {
					t.Errorf("err = %v, want an *Error for the 307 that was not followed", err)
				}
			})
		}
	}
	if n := targetHits.n.Load(); n != 0 {
		t.Errorf("redirect target hit %d times", n)
	}
}

// TestHTTPClientIgnoresEnvironmentProxy: the client credproxy builds never
// takes a proxy from the environment, where a sidecar finds the
// HTTPS_PROXY of the scripts it serves.
func TestHTTPClientIgnoresEnvironmentProxy(t *testing.T) {
	tr, ok := NewHTTPClient().Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Fatalf("transport %T with Proxy set: the environment's proxy would be used", NewHTTPClient().Transport)
	}
}

// paddedAnswer is a token answer every kind accepts (RFC 6749, CSP and
// Splunk field names at once), padded to exactly n bytes.
func paddedAnswer(n int) string {
	const head = `{"access_token":"at-1","accessToken":"at-1","token_type":"bearer","expires_in":60,"pad":"`
	return head + strings.Repeat("x", n-len(head)-2) + `"}`
}

// TestOversizedAnswers: for every kind, an answer over MaxResponseSize,
// a token as well as an error, is refused with a message that says so, not
// with a parse error about the truncated bytes. An answer of exactly
// MaxResponseSize bytes is still read.
func TestOversizedAnswers(t *testing.T) {
	wantMsg := fmt.Sprintf("answer larger than %d bytes", MaxResponseSize)
	tcs := []struct {
		desc   string
		status int
		body   string
		ok     bool
	}{
		{desc: "token answer at the cap", status: 200, body: paddedAnswer(MaxResponseSize), ok: true},
		{desc: "token answer one byte over", status: 200, body: paddedAnswer(MaxResponseSize + 1)},
		{desc: "token answer far over", status: 200, body: paddedAnswer(3 * MaxResponseSize)},
		{desc: "error answer over", status: 400, body: `{"error":"invalid_grant","error_description":"` + strings.Repeat("e", MaxResponseSize) + `"}`},
		{desc: "HTML error page over", status: 503, body: "<html>" + strings.Repeat("<p>down</p>", MaxResponseSize/10)},
	}
	for _, tc := range tcs {
		base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		for kind, src := range everySource(t, base, NewHTTPClient()) {
			t.Run(tc.desc+"/"+kind, func(t *testing.T) {
				_, err := src.Fetch(context.Background())
				if tc.ok {
					if err != nil {
						t.Fatalf("answer of exactly MaxResponseSize bytes refused: %v", err)
					}
					return
				}
				e, isErr := err.(*Error)
				if !isErr || e.Status != tc.status || !strings.Contains(e.Message, wantMsg) {
					t.Errorf("err = %v, want an *Error with status %d saying %q", err, tc.status, wantMsg)
				}
			})
		}
	}
}
