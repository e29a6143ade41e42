package tokenapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokencache"
)

const (
	oauthTestToken = "oa2tok-SECRET-91c7e2"
	// oauthTestSecret has the characters that RFC 6749 2.3.1's
	// form-encoding changes: sent raw or encoded, it must be accepted.
	oauthTestSecret = "lc+SECRET/=:%2B x"
)

// servedTokens is a fakeTokens that, like tokencache.Cache, stops serving
// its token at until.
type servedTokens struct {
	fakeTokens
	until time.Time
}

func (s *servedTokens) ServedUntil(tok exchange.Token) (time.Time, bool) {
	return s.until, tok.Value.Equal(s.tok.Value)
}

// oauthFixture is an admin listener with the OAuth 2.0 endpoint over
// routes "wf" (a token expiring in an hour, served for 50 minutes,
// secret oauthTestSecret), "sf" (no prefix, no expiry, no secret),
// "plain" (expiring in an hour, no ServedUntil, no secret), "down" (no
// token to be had), "filed" (secret from a file) and "lost" (secret file
// missing).
type oauthFixture struct {
	srv        *httptest.Server
	reg        *prometheus.Registry
	logs       *logtest.Capture
	secretFile string
	url        string
}

func startOAuth2(t *testing.T) *oauthFixture {
	t.Helper()
	log, logs := logtest.New(t)
	reg := prometheus.NewRegistry()
	secretFile := filepath.Join(t.TempDir(), "local-secret")
	if err := os.WriteFile(secretFile, []byte("filed-SECRET-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hour := exchange.Token{Value: secret.New(oauthTestToken), Expiry: time.Now().Add(time.Hour)}
	route := func(name, typ string, tokens Tokens, ref secret.Ref) Route {
		return Route{Name: name, TokenType: typ, Tokens: tokens, ClientSecret: ref}
	}
	mux := newMux(Options{Metrics: NewMetrics(reg), Logger: log, Routes: []Route{
		route("wf", "Bearer", &servedTokens{fakeTokens{tok: hour}, hour.Expiry.Add(-10 * time.Minute)},
			secret.Ref{Value: secret.New(oauthTestSecret), Var: "CREDPROXY_WF_LOCAL_CLIENT_SECRET"}),
		route("sf", "", &fakeTokens{tok: exchange.Token{Value: secret.New(oauthTestToken + "-static")}}, secret.Ref{}),
		route("plain", "Bearer", &fakeTokens{tok: hour}, secret.Ref{}),
		route("down", "Bearer", &fakeTokens{err: &tokencache.UnavailableError{Route: "down", Detail: "csp: HTTP 400: invalid_grant"}}, secret.Ref{}),
		route("filed", "Bearer", &fakeTokens{tok: hour}, secret.Ref{File: secretFile, Var: "CREDPROXY_FILED_LOCAL_CLIENT_SECRET_FILE"}),
		route("lost", "Bearer", &fakeTokens{tok: hour}, secret.Ref{File: secretFile + ".missing", Var: "CREDPROXY_LOST_LOCAL_CLIENT_SECRET_FILE"}),
	}})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &oauthFixture{srv: srv, reg: reg, logs: logs, secretFile: secretFile, url: srv.URL + OAuth2TokenPath}
}

// checkClean fails t if the logs or the metrics hold a token or a secret.
func (f *oauthFixture) checkClean(t *testing.T) {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics strings.Builder
	for _, mf := range mfs {
		metrics.WriteString(mf.String())
	}
	logtest.AssertNoSecrets(t, "logs and metrics", f.logs.String()+metrics.String(), oauthTestToken, oauthTestSecret, "filed-SECRET-1", "filed-SECRET-2")
}

// TestOAuth2ClientCredentials: golang.org/x/oauth2's client credentials
// flow (what Prometheus, Grafana and the OpenTelemetry Collector use)
// gets the route's token with the secret in the Authorization header, in
// the body, and auto-detected; a route without a secret takes none.
func TestOAuth2ClientCredentials(t *testing.T) {
	f := startOAuth2(t)
	for _, tc := range []struct {
		desc  string
		style oauth2.AuthStyle
	}{{"in header", oauth2.AuthStyleInHeader}, {"in params", oauth2.AuthStyleInParams}, {"auto-detected", oauth2.AuthStyleAutoDetect}} {
		t.Run(tc.desc, func(t *testing.T) {
			cc := clientcredentials.Config{ClientID: "wf", ClientSecret: oauthTestSecret, TokenURL: f.url, Scopes: []string{"metrics:write"}, AuthStyle: tc.style}
			before := time.Now()
			tok, err := cc.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != oauthTestToken || tok.Type() != "Bearer" {
				t.Errorf("token %q type %q", tok.AccessToken, tok.Type())
			}
			// Served for 50 minutes: expires_in counts to then, not to the
			// token's own expiry an hour away.
			if want := before.Add(50 * time.Minute); tok.Expiry.Before(want.Add(-2*time.Second)) || tok.Expiry.After(want.Add(time.Second)) {
				t.Errorf("expiry %v, want about %v", tok.Expiry, want)
			}
			wrong := clientcredentials.Config{ClientID: "wf", ClientSecret: "not-it", TokenURL: f.url, AuthStyle: tc.style}
			if _, err := wrong.Token(context.Background()); err == nil {
				t.Error("a wrong secret got the token")
			} else if re, ok := err.(*oauth2.RetrieveError); !ok || re.ErrorCode != "invalid_client" {
				t.Errorf("wrong secret: %v, want invalid_client", err)
			}
		})
	}
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{ClientID: "sf", TokenURL: f.url, AuthStyle: style}
		tok, err := cc.Token(context.Background())
		if err != nil || tok.AccessToken != oauthTestToken+"-static" || tok.Type() != "Bearer" || !tok.Expiry.IsZero() {
			t.Errorf("route without a secret, style %d: %+v %v", style, tok, err)
		}
	}
	if n := counterValue(t, f.reg, "credproxy_oauth2_token_requests_total", "result", "ok"); n != 5 {
		t.Errorf("ok requests counted %v, want 5", n)
	}
	if n := counterValue(t, f.reg, "credproxy_oauth2_token_requests_total", "route", "wf"); n < 6 {
		t.Errorf("requests for wf counted %v, want at least 6", n)
	}
	if !strings.Contains(f.logs.String(), "token handed out") {
		t.Error("handing out a token is not logged")
	}
	f.checkClean(t)
}

// tokenRequest is one raw request to the endpoint.
type tokenRequest struct {
	method, contentType, body, query, host string
	header                                 map[string]string
	basic                                  []string // id, secret: raw, as curl -u sends them
}

func (f *oauthFixture) do(t *testing.T, tr tokenRequest) apiAnswer {
	t.Helper()
	if tr.method == "" {
		tr.method = "POST"
	}
	u := f.url
	if tr.query != "" {
		u += "?" + tr.query
	}
	req, err := http.NewRequest(tr.method, u, strings.NewReader(tr.body))
	if err != nil {
		t.Fatal(err)
	}
	if tr.contentType != "-" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tr.contentType != "" {
			req.Header.Set("Content-Type", tr.contentType)
		}
	}
	if tr.basic != nil {
		req.SetBasicAuth(tr.basic[0], tr.basic[1])
	}
	for k, v := range tr.header {
		req.Header.Set(k, v)
	}
	if tr.host != "" {
		req.Host = tr.host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiAnswer{resp.StatusCode, resp.Header, string(b)}
}

// TestOAuth2Answer: the success answer is RFC 6749 5.1 JSON, no more, with
// no-store caching; expires_in is left out for a token without expiry and
// counts to the token's expiry when the route says nothing else.
func TestOAuth2Answer(t *testing.T) {
	f := startOAuth2(t)
	cc := "grant_type=client_credentials&client_id="
	for _, tc := range []struct {
		desc, body string
		want       []string // the JSON fields
		expiresIn  [2]float64
	}{
		{"served until", cc + "wf&client_secret=" + url.QueryEscape(oauthTestSecret), []string{"access_token", "expires_in", "token_type"}, [2]float64{2990, 3000}},
		{"expiry", cc + "plain", []string{"access_token", "expires_in", "token_type"}, [2]float64{3590, 3600}},
		{"no expiry", cc + "sf&scope=x", []string{"access_token", "token_type"}, [2]float64{0, 0}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := f.do(t, tokenRequest{body: tc.body})
			if got.status != 200 {
				t.Fatalf("%d %s", got.status, got.body)
			}
			for k, v := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json"} {
				if got.header.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, got.header.Get(k), v)
				}
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(got.body), &body); err != nil {
				t.Fatal(err)
			}
			if keys := slices.Sorted(func(yield func(string) bool) {
				for k := range body {
					if !yield(k) {
						return
					}
				}
			}); !slices.Equal(keys, tc.want) {
				t.Errorf("fields %v, want %v", keys, tc.want)
			}
			if in, _ := body["expires_in"].(float64); in < tc.expiresIn[0] || in > tc.expiresIn[1] {
				t.Errorf("expires_in %v, want %v", body["expires_in"], tc.expiresIn)
			}
			if body["token_type"] != "Bearer" || !strings.HasPrefix(body["access_token"].(string), oauthTestToken) {
				t.Errorf("body %s", got.body)
			}
		})
	}
}

// TestOAuth2ExpiresInNeverZero: a token in its last second of service is
// answered with expires_in 1, since clients read 0 as "never expires".
func TestOAuth2ExpiresInNeverZero(t *testing.T) {
	log, _ := logtest.New(t)
	tok := exchange.Token{Value: secret.New(oauthTestToken), Expiry: time.Now().Add(5 * time.Second)}
	mux := newMux(Options{Logger: log, Routes: []Route{{Name: "r", Tokens: &servedTokens{fakeTokens{tok: tok}, time.Now().Add(300 * time.Millisecond)}}}})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := &oauthFixture{url: srv.URL + OAuth2TokenPath}
	got := f.do(t, tokenRequest{body: "grant_type=client_credentials&client_id=r"})
	if got.status != 200 || !strings.Contains(got.body, `"expires_in":1}`) {
		t.Errorf("%d %s, want expires_in 1", got.status, got.body)
	}
}

// TestOAuth2Errors: every refusal is an RFC 6749 5.2 error with the right
// status and code, WWW-Authenticate when the client used (or tried) the
// Authorization header, no-store caching, and no token.
func TestOAuth2Errors(t *testing.T) {
	f := startOAuth2(t)
	cc := "grant_type=client_credentials"
	wf := []string{"wf", oauthTestSecret}
	tcs := []struct {
		desc    string
		req     tokenRequest
		status  int
		code    string
		wwwAuth bool
	}{
		{"no grant_type", tokenRequest{body: "client_id=sf"}, 400, "invalid_request", false},
		{"empty grant_type is none", tokenRequest{body: "grant_type=&client_id=sf"}, 400, "invalid_request", false},
		{"password grant", tokenRequest{body: "grant_type=password&client_id=sf&username=u&password=p"}, 400, "unsupported_grant_type", false},
		{"refresh grant", tokenRequest{body: "grant_type=refresh_token&refresh_token=x", basic: wf}, 400, "unsupported_grant_type", false},
		{"grant_type twice", tokenRequest{body: cc + "&" + cc + "&client_id=sf"}, 400, "invalid_request", false},
		{"client_id twice", tokenRequest{body: cc + "&client_id=sf&client_id=wf"}, 400, "invalid_request", false},
		{"other parameter twice", tokenRequest{body: cc + "&client_id=sf&x=1&x=2"}, 400, "invalid_request", false},
		{"Basic and body secret", tokenRequest{body: cc + "&client_secret=x", basic: wf}, 400, "invalid_request", false},
		{"Basic and another body client_id", tokenRequest{body: cc + "&client_id=sf", basic: wf}, 400, "invalid_request", false},
		{"JSON body", tokenRequest{body: `{"grant_type":"client_credentials"}`, contentType: "application/json"}, 400, "invalid_request", false},
		{"no content type", tokenRequest{body: cc + "&client_id=sf", contentType: "-"}, 400, "invalid_request", false},
		{"body over 16 KiB", tokenRequest{body: cc + "&client_id=sf&pad=" + strings.Repeat("a", 16<<10)}, 400, "invalid_request", false},
		{"malformed form", tokenRequest{body: cc + "&client_id=%zz"}, 400, "invalid_request", false},
		{"parameters in the URL", tokenRequest{body: cc, query: "client_id=sf"}, 400, "invalid_request", false},
		{"GET", tokenRequest{method: "GET", body: ""}, 405, "invalid_request", false},
		{"no client authentication", tokenRequest{body: cc}, 401, "invalid_client", false},
		{"unknown client in the body", tokenRequest{body: cc + "&client_id=nope"}, 401, "invalid_client", false},
		{"unknown client by Basic", tokenRequest{body: cc, basic: []string{"nope", "x"}}, 401, "invalid_client", true},
		{"wrong secret by Basic", tokenRequest{body: cc, basic: []string{"wf", "wrong"}}, 401, "invalid_client", true},
		{"no secret by Basic", tokenRequest{body: cc, basic: []string{"wf", ""}}, 401, "invalid_client", true},
		{"wrong secret in the body", tokenRequest{body: cc + "&client_id=wf&client_secret=wrong"}, 401, "invalid_client", false},
		{"no secret in the body", tokenRequest{body: cc + "&client_id=wf"}, 401, "invalid_client", false},
		{"Bearer instead of Basic", tokenRequest{body: cc, header: map[string]string{"Authorization": "Bearer " + oauthTestToken}}, 401, "invalid_client", true},
		{"Basic not base64", tokenRequest{body: cc, header: map[string]string{"Authorization": "Basic !!!"}}, 401, "invalid_client", true},
		{"Basic without a colon", tokenRequest{body: cc, header: map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("wf"))}}, 401, "invalid_client", true},
		{"no token to be had", tokenRequest{body: cc + "&client_id=down"}, 503, "temporarily_unavailable", false},
		{"secret file unreadable", tokenRequest{body: cc + "&client_id=lost&client_secret=x"}, 503, "temporarily_unavailable", false},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			got := f.do(t, tc.req)
			if got.status != tc.status {
				t.Errorf("status %d, want %d (%s)", got.status, tc.status, got.body)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(got.body), &body); err != nil || body["error"] != tc.code || body["error_description"] == "" || len(body) != 2 {
				t.Errorf("body %s (%v), want error %q with a description", got.body, err, tc.code)
			}
			if www := got.header.Get("WWW-Authenticate"); (www == `Basic realm="credproxy"`) != tc.wwwAuth || (!tc.wwwAuth && www != "") {
				t.Errorf("WWW-Authenticate = %q, want it: %v", www, tc.wwwAuth)
			}
			if tc.status == 405 && got.header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q", got.header.Get("Allow"))
			}
			for k, v := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json"} {
				if got.header.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, got.header.Get(k), v)
				}
			}
			if strings.Contains(got.body, oauthTestToken) || strings.Contains(got.body, "wrong") {
				t.Errorf("refusal echoes a token or a secret: %s", got.body)
			}
		})
	}
	for _, c := range []struct {
		label, value string
		want         float64
	}{
		{"result", "invalid_request", 13}, {"result", "unsupported_grant_type", 2}, {"result", "invalid_client", 10},
		{"result", "temporarily_unavailable", 2}, {"result", "ok", 0}, {"route", "wf", 4},
	} {
		if got := counterValue(t, f.reg, "credproxy_oauth2_token_requests_total", c.label, c.value); got != c.want {
			t.Errorf("requests with %s=%q counted %v, want %v", c.label, c.value, got, c.want)
		}
	}
	if !strings.Contains(f.logs.String(), "local client secret unreadable") {
		t.Error("an unreadable secret file is not logged")
	}
	f.checkClean(t)
}

// TestOAuth2CallerGuards: the token API's guards apply, without its
// Metadata header: no proxy, no browser, no rebound host name.
func TestOAuth2CallerGuards(t *testing.T) {
	f := startOAuth2(t)
	ok := tokenRequest{body: "grant_type=client_credentials", basic: []string{"wf", oauthTestSecret}}
	for _, tc := range []struct {
		desc   string
		header map[string]string
		host   string
	}{
		{"Via", map[string]string{"Via": "1.1 squid"}, ""},
		{"Forwarded", map[string]string{"Forwarded": "for=10.0.0.9"}, ""},
		{"X-Forwarded-For", map[string]string{"X-Forwarded-For": "10.0.0.9"}, ""},
		{"X-Forwarded-Host", map[string]string{"X-Forwarded-Host": "a.example"}, ""},
		{"X-Real-Ip", map[string]string{"X-Real-Ip": "10.0.0.9"}, ""},
		{"X_Forwarded_For", map[string]string{"X_Forwarded_For": "10.0.0.9"}, ""},
		{"True-Client-IP", map[string]string{"True-Client-IP": "10.0.0.9"}, ""},
		{"Origin", map[string]string{"Origin": "http://127.0.0.1:9901"}, ""},
		{"Sec-Fetch-Mode", map[string]string{"Sec-Fetch-Mode": "cors"}, ""},
		{"rebound host name", nil, "attacker.example:9901"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			req := ok
			req.header, req.host = tc.header, tc.host
			got := f.do(t, req)
			if got.status != 403 || !strings.Contains(got.body, `"error":"access_denied"`) || strings.Contains(got.body, oauthTestToken) {
				t.Errorf("%d %s, want 403 access_denied", got.status, got.body)
			}
		})
	}
	for _, host := range []string{"", "localhost:9901", "[::1]:9901"} {
		req := ok
		req.host = host
		if got := f.do(t, req); got.status != 200 {
			t.Errorf("host %q without a Metadata header: %d %s", host, got.status, got.body)
		}
	}
	if n := counterValue(t, f.reg, "credproxy_oauth2_token_requests_total", "result", "forbidden"); n != 10 {
		t.Errorf("refused by the guards %v, want 10", n)
	}
	f.checkClean(t)
}

// TestOAuth2SecretForms: a secret is accepted form-encoded (RFC 6749
// 2.3.1, as golang.org/x/oauth2 sends it) and raw (as curl -u sends it);
// a secret file is read at every request, so a rotation applies at once.
func TestOAuth2SecretForms(t *testing.T) {
	f := startOAuth2(t)
	cc := "grant_type=client_credentials"
	for _, tc := range []struct {
		desc   string
		req    tokenRequest
		status int
	}{
		{"Basic, form-encoded", tokenRequest{body: cc, basic: []string{"wf", url.QueryEscape(oauthTestSecret)}}, 200},
		{"Basic, raw", tokenRequest{body: cc, basic: []string{"wf", oauthTestSecret}}, 200},
		{"Basic, id form-encoded too", tokenRequest{body: cc + "&client_id=wf", basic: []string{"w%66", oauthTestSecret}}, 200},
		{"body", tokenRequest{body: cc + "&client_id=wf&client_secret=" + url.QueryEscape(oauthTestSecret)}, 200},
		{"body, + read as a space", tokenRequest{body: cc + "&client_id=wf&client_secret=" + oauthTestSecret}, 401},
		{"file", tokenRequest{body: cc, basic: []string{"filed", "filed-SECRET-1"}}, 200},
	} {
		if got := f.do(t, tc.req); got.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.desc, got.status, got.body, tc.status)
		}
	}
	if err := os.WriteFile(f.secretFile, []byte("filed-SECRET-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := f.do(t, tokenRequest{body: cc, basic: []string{"filed", "filed-SECRET-1"}}); got.status != 401 {
		t.Errorf("the rotated-out secret: %d", got.status)
	}
	if got := f.do(t, tokenRequest{body: cc, basic: []string{"filed", "filed-SECRET-2"}}); got.status != 200 {
		t.Errorf("the rotated-in secret: %d %s", got.status, got.body)
	}
	f.checkClean(t)
}
