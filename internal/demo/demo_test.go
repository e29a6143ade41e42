package demo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// clock is a settable clock for CSPOptions.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// reply is a response read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request; header values are set, not added.
func do(t *testing.T, method, u string, header map[string]string, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

const formType = "application/x-www-form-urlencoded"

// postForm posts form to a CSP endpoint with the Content-Type CSP wants
// and, when set, an Authorization header.
func postForm(t *testing.T, u, auth string, form url.Values) reply {
	t.Helper()
	h := map[string]string{"Content-Type": formType}
	if auth != "" {
		h["Authorization"] = auth
	}
	return do(t, http.MethodPost, u, h, form.Encode())
}

// tokenReply decodes a CSP success body.
func tokenReply(t *testing.T, r reply) cspToken {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.status, r.body)
	}
	var tok cspToken
	if err := json.Unmarshal(r.body, &tok); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return tok
}

// errorReply decodes a CSP error body and checks its shape.
func errorReply(t *testing.T, r reply, status int) cspErrorBody {
	t.Helper()
	var e cspErrorBody
	if r.status != status || json.Unmarshal(r.body, &e) != nil || e.StatusCode != status ||
		!regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(e.RequestID) || e.Message == "" {
		t.Fatalf("got %d %s, want a CSP error body with status %d", r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	return e
}

var (
	accessTokenRE = regexp.MustCompile(`^csp\.[0-9a-f]{32}$`)
	// ignoreRandom compares token answers without their random parts.
	ignoreRandom = cmpopts.IgnoreFields(cspToken{}, "IDToken", "AccessToken", "RefreshToken")
)

func TestCSPAPITokenGrant(t *testing.T) {
	clk := newClock()
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789", TTL: 30 * time.Minute, Now: clk.Now})
	srv := httptest.NewServer(csp)
	defer srv.Close()

	r := postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"user-api-token-0123456789"}})
	tok := tokenReply(t, r)
	want := cspToken{TokenType: "bearer", ExpiresIn: json.RawMessage("1799"), Scope: "*"}
	if diff := cmp.Diff(want, tok, ignoreRandom); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if !accessTokenRE.MatchString(tok.AccessToken) || !strings.HasPrefix(tok.IDToken, "csp-id.") || !strings.HasPrefix(tok.RefreshToken, "csp-rt.") {
		t.Errorf("tokens %q %q %q do not look like the fake's", tok.AccessToken, tok.IDToken, tok.RefreshToken)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
	if !csp.Valid(tok.AccessToken) || csp.Exchanges() != 1 {
		t.Errorf("Valid %v, Exchanges %d", csp.Valid(tok.AccessToken), csp.Exchanges())
	}

	// Older clients use refresh_token= and add grant_type=api_token.
	tok2 := tokenReply(t, postForm(t, srv.URL+CSPAPITokenPath, "",
		url.Values{"refresh_token": {"user-api-token-0123456789"}, "grant_type": {"api_token"}}))
	if tok2.AccessToken == tok.AccessToken || !csp.Valid(tok2.AccessToken) {
		t.Errorf("second token %q not fresh and valid", tok2.AccessToken)
	}

	reqs := csp.Requests()
	if len(reqs) != 2 {
		t.Fatalf("recorded %d requests, want 2", len(reqs))
	}
	got := reqs[0]
	if got.Header.Get("Content-Type") != formType || got.Header.Get("Authorization") != "" {
		t.Errorf("recorded header %v", got.Header)
	}
	got.Header = nil
	wantReq := Request{Method: "POST", Path: CSPAPITokenPath, Form: url.Values{"api_token": {"user-api-token-0123456789"}}, Time: clk.Now()}
	if diff := cmp.Diff(wantReq, got); diff != "" {
		t.Errorf("recorded request (-want +got):\n%s", diff)
	}
}

func TestCSPAPITokenRefused(t *testing.T) {
	const apiToken = "user-api-token-0123456789"
	tcs := []struct {
		desc        string
		opts        CSPOptions
		form        url.Values
		wantMessage string
	}{
		{desc: "wrong token", opts: CSPOptions{APIToken: apiToken}, form: url.Values{"api_token": {"wrong-api-token-abcdefWXYZ"}},
			wantMessage: "invalid_grant: Invalid refresh token: ****WXYZ"},
		{desc: "short wrong token shows nothing", opts: CSPOptions{APIToken: apiToken}, form: url.Values{"api_token": {"short-WXYZ"}},
			wantMessage: "invalid_grant: Invalid refresh token: ****"},
		{desc: "prefix of the token", opts: CSPOptions{APIToken: apiToken}, form: url.Values{"api_token": {apiToken[:20]}},
			wantMessage: "invalid_grant: Invalid refresh token: ****" + apiToken[16:20]},
		{desc: "missing", opts: CSPOptions{APIToken: apiToken}, form: url.Values{"grant_type": {"api_token"}},
			wantMessage: "invalid_request: api_token is missing"},
		{desc: "grant disabled", opts: CSPOptions{ClientID: "appId", ClientSecret: "appSecret"}, form: url.Values{"api_token": {"anything-at-all-1234"}},
			wantMessage: "invalid_grant: Invalid refresh token: ****1234"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			csp := NewCSP(tc.opts)
			srv := httptest.NewServer(csp)
			defer srv.Close()
			r := postForm(t, srv.URL+CSPAPITokenPath, "", tc.form)
			e := errorReply(t, r, http.StatusBadRequest)
			if e.Message != tc.wantMessage {
				t.Errorf("message %q, want %q", e.Message, tc.wantMessage)
			}
			if sent := tc.form.Get("api_token"); len(sent) > 4 && strings.Contains(string(r.body), sent) {
				t.Errorf("answer %s echoes the credential", r.body)
			}
			if csp.Exchanges() != 0 {
				t.Errorf("Exchanges %d", csp.Exchanges())
			}
		})
	}
}

func TestCSPAppGrant(t *testing.T) {
	const id, secret = "appId", "a+b/c=d"
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	raw := basic(id + ":" + secret)
	formEncoded := basic(url.QueryEscape(id) + ":" + url.QueryEscape(secret)) // RFC 6749 2.3.1
	if raw != "Basic YXBwSWQ6YStiL2M9ZA==" || formEncoded != "Basic YXBwSWQ6YSUyQmIlMkZjJTNEZA==" {
		t.Fatalf("test setup: %q %q", raw, formEncoded)
	}
	ok := url.Values{"grant_type": {"client_credentials"}}
	tcs := []struct {
		desc       string
		auth       string
		form       url.Values
		wantStatus int
	}{
		{desc: "raw Basic", auth: raw, form: ok, wantStatus: 200},
		{desc: "scheme is case-insensitive", auth: "basic " + strings.TrimPrefix(raw, "Basic "), form: ok, wantStatus: 200},
		{desc: "RFC 6749 form-encoded Basic", auth: formEncoded, form: ok, wantStatus: 401},
		{desc: "wrong secret", auth: basic(id + ":a+b/c=e"), form: ok, wantStatus: 401},
		{desc: "wrong id", auth: basic("appID:" + secret), form: ok, wantStatus: 401},
		{desc: "empty secret", auth: basic(id + ":"), form: ok, wantStatus: 401},
		{desc: "not base64", auth: "Basic !!!", form: ok, wantStatus: 401},
		{desc: "bearer instead", auth: "Bearer " + secret, form: ok, wantStatus: 401},
		{desc: "no Authorization", form: ok, wantStatus: 401},
		{desc: "credentials in the body", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, wantStatus: 401},
		{desc: "grant_type missing", auth: raw, form: url.Values{}, wantStatus: 400},
		{desc: "grant_type password", auth: raw, form: url.Values{"grant_type": {"password"}}, wantStatus: 400},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			csp := NewCSP(CSPOptions{ClientID: id, ClientSecret: secret})
			srv := httptest.NewServer(csp)
			defer srv.Close()
			r := postForm(t, srv.URL+CSPAppPath, tc.auth, tc.form)
			if tc.wantStatus == 200 {
				if tok := tokenReply(t, r); !csp.Valid(tok.AccessToken) || csp.Exchanges() != 1 {
					t.Errorf("issued token not valid or not counted")
				}
				return
			}
			e := errorReply(t, r, tc.wantStatus)
			if strings.Contains(e.Message, secret) || csp.Exchanges() != 0 {
				t.Errorf("message %q, Exchanges %d", e.Message, csp.Exchanges())
			}
		})
	}
}

// TestCSPTestVector: the docs/protocols.md 1b test vector, and the recorded
// request a client test asserts against.
func TestCSPTestVector(t *testing.T) {
	csp := NewCSP(CSPOptions{ClientID: "appId", ClientSecret: "appSecret", OrgID: "default-org"})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	tok := tokenReply(t, postForm(t, srv.URL+CSPAppPath, "Basic YXBwSWQ6YXBwU2VjcmV0", url.Values{"grant_type": {"client_credentials"}, "orgId": {"org-1"}}))
	if got := csp.Org(tok.AccessToken); got != "org-1" {
		t.Errorf("Org = %q, want org-1", got)
	}
	reqs := csp.Requests()
	if len(reqs) != 1 || reqs[0].Path != CSPAppPath || reqs[0].Header.Get("Authorization") != "Basic YXBwSWQ6YXBwU2VjcmV0" ||
		!cmp.Equal(reqs[0].Form, url.Values{"grant_type": {"client_credentials"}, "orgId": {"org-1"}}) {
		t.Errorf("recorded %+v", reqs)
	}
	// Without orgId the token gets the default org.
	tok = tokenReply(t, postForm(t, srv.URL+CSPAppPath, "Basic YXBwSWQ6YXBwU2VjcmV0", url.Values{"grant_type": {"client_credentials"}}))
	if got := csp.Org(tok.AccessToken); got != "default-org" {
		t.Errorf("Org = %q, want default-org", got)
	}
	if got := csp.Org("csp.unknown"); got != "" {
		t.Errorf("Org of an unknown token = %q", got)
	}
}

// TestCSPRejectsRFC6749Client: golang.org/x/oauth2 form-encodes id and
// secret before base64 in its Basic header (RFC 6749 2.3.1), which CSP
// clients do not; the fake must refuse it, or it would hide that bug.
func TestCSPRejectsRFC6749Client(t *testing.T) {
	token := func(secret string) (*CSP, error) {
		csp := NewCSP(CSPOptions{ClientID: "appId", ClientSecret: secret})
		srv := httptest.NewServer(csp)
		defer srv.Close()
		cfg := clientcredentials.Config{ClientID: "appId", ClientSecret: secret, TokenURL: srv.URL + CSPAppPath, AuthStyle: oauth2.AuthStyleInHeader}
		_, err := cfg.Token(context.Background())
		return csp, err
	}
	csp, err := token("a+b/c=d")
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.Response.StatusCode != http.StatusUnauthorized {
		t.Errorf("x/oauth2 with secret a+b/c=d: err %v, want a 401", err)
	}
	if got := csp.Requests()[0].Header.Get("Authorization"); got != "Basic YXBwSWQ6YSUyQmIlMkZjJTNEZA==" {
		t.Errorf("x/oauth2 sent %q, not the form-encoded variant", got)
	}
	// With a secret that needs no encoding it gets through, so the
	// refusal above is about the encoding alone.
	if _, err := token("appSecret"); err != nil {
		t.Errorf("x/oauth2 with secret appSecret: %v", err)
	}
}

func TestCSPRequestChecks(t *testing.T) {
	const apiToken = "user-api-token-0123456789"
	good := "api_token=" + apiToken
	padded := func(n int) string { return good + "&pad=" + strings.Repeat("x", n-len(good)-len("&pad=")) }
	tcs := []struct {
		desc        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantForm    bool // whether the record has the form
	}{
		{desc: "ok", method: "POST", path: CSPAPITokenPath, contentType: formType, body: good, wantStatus: 200, wantForm: true},
		{desc: "charset parameter", method: "POST", path: CSPAPITokenPath, contentType: formType + "; charset=UTF-8", body: good, wantStatus: 200, wantForm: true},
		{desc: "exactly 64 KiB", method: "POST", path: CSPAPITokenPath, contentType: formType, body: padded(64 << 10), wantStatus: 200, wantForm: true},
		{desc: "one byte over 64 KiB", method: "POST", path: CSPAPITokenPath, contentType: formType, body: padded(64<<10 + 1), wantStatus: 413},
		{desc: "GET", method: "GET", path: CSPAPITokenPath, wantStatus: 405},
		{desc: "PUT on the app path", method: "PUT", path: CSPAppPath, contentType: formType, body: good, wantStatus: 405},
		{desc: "JSON body", method: "POST", path: CSPAPITokenPath, contentType: "application/json", body: `{"api_token":"x"}`, wantStatus: 415},
		{desc: "no Content-Type", method: "POST", path: CSPAPITokenPath, body: good, wantStatus: 415},
		{desc: "malformed form", method: "POST", path: CSPAPITokenPath, contentType: formType, body: "api_token=%zz", wantStatus: 400},
		{desc: "unknown path", method: "POST", path: "/csp/gateway/am/api/auth/token", contentType: formType, body: good, wantStatus: 404},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			csp := NewCSP(CSPOptions{APIToken: apiToken})
			srv := httptest.NewServer(csp)
			defer srv.Close()
			h := map[string]string{}
			if tc.contentType != "" {
				h["Content-Type"] = tc.contentType
			}
			r := do(t, tc.method, srv.URL+tc.path, h, tc.body)
			if tc.wantStatus == 200 {
				tokenReply(t, r)
			} else {
				errorReply(t, r, tc.wantStatus)
			}
			if tc.wantStatus == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
			// Every request is recorded, refused ones too.
			reqs := csp.Requests()
			if len(reqs) != 1 || reqs[0].Method != tc.method || reqs[0].Path != tc.path || (reqs[0].Form != nil) != tc.wantForm {
				t.Errorf("recorded %+v", reqs)
			}
		})
	}
}

// TestCSPExpiry: a token is valid up to the nanosecond before issue +
// TTL; a renewal does not revoke the previous token; SetTTL affects only
// tokens issued later.
func TestCSPExpiry(t *testing.T) {
	clk := newClock()
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789", TTL: time.Minute, Now: clk.Now})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	exchange := func() cspToken {
		t.Helper()
		return tokenReply(t, postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"user-api-token-0123456789"}}))
	}

	first := exchange()
	if string(first.ExpiresIn) != "59" {
		t.Errorf("expires_in %s, want 59", first.ExpiresIn)
	}
	clk.Add(30 * time.Second)
	second := exchange() // a renewal half-way
	clk.Add(30*time.Second - time.Nanosecond)
	if !csp.Valid(first.AccessToken) {
		t.Error("first token invalid 1 ns before its expiry")
	}
	clk.Add(time.Nanosecond)
	if csp.Valid(first.AccessToken) {
		t.Error("first token valid at its expiry")
	}
	if !csp.Valid(second.AccessToken) {
		t.Error("second token invalid before its expiry")
	}

	csp.SetTTL(10 * time.Minute)
	third := exchange()
	if string(third.ExpiresIn) != "599" {
		t.Errorf("expires_in after SetTTL %s, want 599", third.ExpiresIn)
	}
	clk.Add(30 * time.Second)
	if csp.Valid(second.AccessToken) || !csp.Valid(third.AccessToken) {
		t.Error("SetTTL changed a token already issued, or not the new one")
	}
	clk.Add(10*time.Minute - 30*time.Second)
	if csp.Valid(third.AccessToken) {
		t.Error("third token valid at its expiry")
	}

	csp.SetTTL(0)
	fourth := exchange()
	if string(fourth.ExpiresIn) != "0" || csp.Valid(fourth.AccessToken) {
		t.Errorf("TTL 0: expires_in %s, valid %v", fourth.ExpiresIn, csp.Valid(fourth.AccessToken))
	}
}

func TestCSPExpiresIn(t *testing.T) {
	tcs := []struct {
		ttl  time.Duration
		want string
	}{
		{30 * time.Minute, "1799"},
		{30 * time.Second, "29"},
		{2500 * time.Millisecond, "1"},
		{2 * time.Second, "1"},
		{2*time.Second - time.Nanosecond, "1"},
		{time.Second, "1"},
		{999 * time.Millisecond, "0"},
		{-5 * time.Second, "-5"},
	}
	for _, tc := range tcs {
		if got := string(cspExpiresIn(tc.ttl)); got != tc.want {
			t.Errorf("cspExpiresIn(%v) = %s, want %s", tc.ttl, got, tc.want)
		}
	}
}

func TestCSPSetExpiresIn(t *testing.T) {
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789", TTL: time.Hour})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	tcs := []struct {
		desc    string
		raw     json.RawMessage
		want    string
		present bool
	}{
		{desc: "zero", raw: json.RawMessage("0"), want: "0", present: true},
		{desc: "negative", raw: json.RawMessage("-5"), want: "-5", present: true},
		{desc: "string", raw: json.RawMessage(`"60"`), want: `"60"`, present: true},
		{desc: "null", raw: json.RawMessage("null"), want: "null", present: true},
		{desc: "omitted", raw: json.RawMessage{}},
		{desc: "back to computed", raw: nil, want: "3599", present: true},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			csp.SetExpiresIn(tc.raw)
			r := postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"user-api-token-0123456789"}})
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &fields); err != nil {
				t.Fatal(err)
			}
			got, present := fields["expires_in"]
			if present != tc.present || string(got) != tc.want {
				t.Errorf("expires_in %s (present %v), want %s (present %v)", got, present, tc.want, tc.present)
			}
			if !csp.Valid(strings.Trim(string(fields["access_token"]), `"`)) {
				t.Error("the override changed the enforced lifetime")
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("SetExpiresIn accepted invalid JSON")
		}
	}()
	csp.SetExpiresIn(json.RawMessage("soon"))
}

func TestCSPRevoke(t *testing.T) {
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789"})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	var toks []string
	for range 3 {
		toks = append(toks, tokenReply(t, postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"user-api-token-0123456789"}})).AccessToken)
	}
	csp.Revoke(toks[0])
	if csp.Valid(toks[0]) || !csp.Valid(toks[1]) || !csp.Valid(toks[2]) {
		t.Error("Revoke did not revoke exactly one token")
	}
	csp.RevokeAll()
	if csp.Valid(toks[1]) || csp.Valid(toks[2]) {
		t.Error("RevokeAll left a token valid")
	}
	if csp.Valid("") || csp.Valid("csp.0123") {
		t.Error("an unknown token is valid")
	}
}

func TestCSPFaults(t *testing.T) {
	const apiToken = "user-api-token-0123456789"
	csp := NewCSP(CSPOptions{APIToken: apiToken})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	exchange := func() reply {
		t.Helper()
		return postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {apiToken}})
	}

	csp.SetFault(Fault{Status: 503, Body: "<html>down</html>", ContentType: "text/html", RetryAfter: "7", Times: 2})
	for i := range 2 {
		r := exchange()
		got := []string{string(r.body), r.header.Get("Content-Type"), r.header.Get("Retry-After")}
		if diff := cmp.Diff([]string{"<html>down</html>", "text/html", "7"}, got); r.status != 503 || diff != "" {
			t.Errorf("fault %d: status %d (-want +got):\n%s", i, r.status, diff)
		}
	}
	tokenReply(t, exchange()) // Times 2 has run out
	if csp.Exchanges() != 1 {
		t.Errorf("Exchanges %d, want 1: faults issue nothing", csp.Exchanges())
	}

	// Until cleared, with the default Content-Type; the request checks
	// still come first.
	csp.SetFault(Fault{Status: 500, Body: `{"statusCode":500}`})
	for range 3 {
		if r := exchange(); r.status != 500 || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("fault: %d %q", r.status, r.header.Get("Content-Type"))
		}
	}
	errorReply(t, do(t, "GET", srv.URL+CSPAPITokenPath, nil, ""), 405)
	csp.ClearFault()
	tokenReply(t, exchange())

	// Status 0: a slow but working service.
	csp.SetFault(Fault{Delay: 50 * time.Millisecond, Times: 1})
	start := time.Now()
	tokenReply(t, exchange())
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, before the delay", d)
	}

	defer func() {
		if recover() == nil {
			t.Error("SetFault accepted status 99")
		}
	}()
	csp.SetFault(Fault{Status: 99})
}

// TestCSPFaultDelayHonoursCancel: a client that gives up during a Delay
// frees the handler at once; otherwise srv.Close would wait an hour.
func TestCSPFaultDelayHonoursCancel(t *testing.T) {
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789"})
	srv := httptest.NewServer(csp)
	csp.SetFault(Fault{Status: 503, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+CSPAPITokenPath, strings.NewReader("api_token=x"))
	req.Header.Set("Content-Type", formType)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d during the delay", resp.StatusCode)
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still waiting after the client gave up")
	}
}

// TestCSPRequestsAreCopies: what Requests returns cannot change the
// records.
func TestCSPRequestsAreCopies(t *testing.T) {
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789"})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"user-api-token-0123456789"}})
	r := csp.Requests()[0]
	r.Header.Set("Content-Type", "changed")
	r.Form["api_token"][0] = "changed"
	r2 := csp.Requests()[0]
	if r2.Header.Get("Content-Type") != formType || r2.Form.Get("api_token") != "user-api-token-0123456789" {
		t.Errorf("the records changed: %+v", r2)
	}
}

// TestCSPConcurrent is for -race: exchanges, checks, reads and changes
// at once.
func TestCSPConcurrent(t *testing.T) {
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789", ClientID: "appId", ClientSecret: "appSecret"})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			path, body := CSPAPITokenPath, "api_token=user-api-token-0123456789"
			if i%2 == 1 {
				path, body = CSPAppPath, "grant_type=client_credentials"
			}
			req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", formType)
			req.SetBasicAuth("appId", "appSecret")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var tok cspToken
			if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || !csp.Valid(tok.AccessToken) {
				t.Errorf("%s: %d, token %q not valid (%v)", path, resp.StatusCode, tok.AccessToken, err)
			}
			_ = csp.Requests()
			_ = csp.Org(tok.AccessToken)
			csp.SetTTL(time.Minute)
			csp.SetExpiresIn(nil)
		})
	}
	wg.Wait()
	if csp.Exchanges() != n || len(csp.Requests()) != n {
		t.Errorf("Exchanges %d, Requests %d, want %d", csp.Exchanges(), len(csp.Requests()), n)
	}
}

// echoReplyOf decodes an accepted echo answer.
func echoReplyOf(t *testing.T, r reply) echoReply {
	t.Helper()
	var e echoReply
	if r.status != 200 || json.Unmarshal(r.body, &e) != nil {
		t.Fatalf("got %d %s, want an echo", r.status, r.body)
	}
	return e
}

// fingerprint is the echo's token_fingerprint, computed independently.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:])[:4]
}

// TestEchoCredentialCheck: only a currently valid CSP token, in exactly
// one header with the exact prefix, gets through.
func TestEchoCredentialCheck(t *testing.T) {
	clk := newClock()
	csp := NewCSP(CSPOptions{APIToken: "user-api-token-0123456789", TTL: time.Minute, Now: clk.Now})
	cspSrv := httptest.NewServer(csp)
	defer cspSrv.Close()
	issue := func() string {
		return tokenReply(t, postForm(t, cspSrv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"user-api-token-0123456789"}})).AccessToken
	}
	expired := issue()
	clk.Add(time.Minute)
	revoked := issue()
	csp.Revoke(revoked)
	good := issue()

	e := NewEcho(csp.Valid, EchoOptions{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	tcs := []struct {
		desc   string
		values []string // Authorization headers
		want   int
	}{
		{desc: "valid", values: []string{"Bearer " + good}, want: 200},
		{desc: "missing", want: 401},
		{desc: "empty", values: []string{""}, want: 401},
		{desc: "prefix only", values: []string{"Bearer "}, want: 401},
		{desc: "unknown token", values: []string{"Bearer csp.0123456789abcdef0123456789abcdef"}, want: 401},
		{desc: "expired", values: []string{"Bearer " + expired}, want: 401},
		{desc: "revoked", values: []string{"Bearer " + revoked}, want: 401},
		{desc: "no prefix", values: []string{good}, want: 401},
		{desc: "lower-case prefix", values: []string{"bearer " + good}, want: 401},
		{desc: "Basic", values: []string{"Basic " + good}, want: 401},
		{desc: "two spaces", values: []string{"Bearer  " + good}, want: 401},
		{desc: "added next to the client's", values: []string{"Bearer " + good, "Bearer forged"}, want: 401},
		{desc: "added before the client's", values: []string{"Bearer forged", "Bearer " + good}, want: 401},
	}
	rejected := 0
	for i, tc := range tcs {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v2/source", nil)
		for _, v := range tc.values {
			req.Header.Add("Authorization", v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.desc, resp.StatusCode, body, tc.want)
		}
		if tc.want == 401 {
			rejected++
			var got map[string]string
			_ = json.Unmarshal(body, &got)
			if resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` || got["error"] != "invalid_token" || got["message"] == "" {
				t.Errorf("%s: 401 answer %v %s", tc.desc, resp.Header, body)
			}
		}
		if strings.Contains(string(body), good) {
			t.Errorf("%s: answer echoes the token: %s", tc.desc, body)
		}
		// The wire drops trailing spaces, hence the trimming.
		trim := cmpopts.AcyclicTransformer("trim", strings.TrimSpace)
		if diff := cmp.Diff(req.Header.Values("Authorization"), e.LastHeader().Values("Authorization"), trim); diff != "" {
			t.Errorf("%s: LastHeader (-sent +got):\n%s", tc.desc, diff)
		}
		if e.Requests() != i+1 || e.Rejected() != rejected {
			t.Errorf("%s: Requests %d, Rejected %d", tc.desc, e.Requests(), e.Rejected())
		}
	}
}

func TestEchoEchoes(t *testing.T) {
	tcs := []struct {
		desc  string
		opts  EchoOptions
		name  string // credential header, as the client spells it
		value string
	}{
		{desc: "Authorization", name: "Authorization", value: "Bearer tok-echo-1"},
		{desc: "X-SF-Token", opts: EchoOptions{Header: "X-SF-Token", NoPrefix: true}, name: "X-SF-Token", value: "tok-echo-1"},
		{desc: "lower-case option", opts: EchoOptions{Header: "x-sf-token", NoPrefix: true}, name: "X-Sf-Token", value: "tok-echo-1"},
		{desc: "custom prefix", opts: EchoOptions{Header: "X-Api-Key", Prefix: "Key "}, name: "x-api-key", value: "Key tok-echo-1"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			e := NewEcho(func(tok string) bool { return tok == "tok-echo-1" }, tc.opts)
			srv := httptest.NewServer(e)
			defer srv.Close()
			r := do(t, "POST", srv.URL+"/report?f=wavefront", map[string]string{
				tc.name: tc.value, "Content-Type": "text/plain", "X-Custom": "kept",
			}, "cpu.load 1 source=e2e\n")
			got := echoReplyOf(t, r)
			if strings.Contains(string(r.body), "tok-echo-1") {
				t.Fatalf("answer echoes the token: %s", r.body)
			}
			want := echoReply{
				Method: "POST", Path: "/report", Query: "f=wavefront", Host: strings.TrimPrefix(srv.URL, "http://"),
				Authorized: true, TokenFingerprint: fingerprint("tok-echo-1"), BodyBytes: 22,
				Headers: http.Header{"Content-Type": {"text/plain"}, "X-Custom": {"kept"}},
			}
			// Leave out the headers Go's client adds.
			for _, k := range []string{"Accept-Encoding", "User-Agent", "Content-Length"} {
				got.Headers.Del(k)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("echo (-want +got):\n%s", diff)
			}
			if v := e.LastHeader().Get(tc.name); v != tc.value {
				t.Errorf("LastHeader %s = %q, want %q", tc.name, v, tc.value)
			}
		})
	}
}

func TestEchoTestPaths(t *testing.T) {
	e := NewEcho(func(tok string) bool { return tok == "tok" }, EchoOptions{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	auth := map[string]string{"Authorization": "Bearer tok"}
	tcs := []struct {
		desc       string
		path       string
		wantStatus int
		wantBody   string
		wantHeader http.Header
	}{
		{desc: "redirect", path: "/redirect", wantStatus: 302, wantHeader: http.Header{"Location": {"/api/v2/target"}}},
		{desc: "status 418", path: "/status/418", wantStatus: 418, wantBody: `{"status":418}`},
		{desc: "status 503", path: "/status/503", wantStatus: 503, wantBody: `{"status":503}`},
		{desc: "status 204 has no body", path: "/status/204", wantStatus: 204, wantBody: ""},
		{desc: "status 99", path: "/status/99", wantStatus: 400, wantBody: `{"error":"status must be 200-599"}`},
		{desc: "status word", path: "/status/teapot", wantStatus: 400, wantBody: `{"error":"status must be 200-599"}`},
		{desc: "big", path: "/big?bytes=5", wantStatus: 200, wantBody: "\x00\x00\x00\x00\x00",
			wantHeader: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {"5"}}},
		{desc: "big empty", path: "/big?bytes=0", wantStatus: 200, wantBody: ""},
		{desc: "big negative", path: "/big?bytes=-1", wantStatus: 400, wantBody: `{"error":"bytes must be a non-negative integer"}`},
		{desc: "stream default", path: "/stream", wantStatus: 200, wantBody: "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
			wantHeader: http.Header{"Content-Type": {"application/x-ndjson"}}},
		{desc: "stream 2", path: "/stream?chunks=2&interval=1ms", wantStatus: 200, wantBody: "{\"n\":1}\n{\"n\":2}\n"},
		{desc: "stream 0 chunks", path: "/stream?chunks=0", wantStatus: 400, wantBody: `{"error":"chunks must be 1-100000"}`},
		{desc: "stream bad interval", path: "/stream?interval=5", wantStatus: 400, wantBody: `{"error":"interval must be a Go duration"}`},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			r := do(t, "GET", srv.URL+tc.path, auth, "")
			if r.status != tc.wantStatus || string(r.body) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
			for k := range tc.wantHeader {
				if diff := cmp.Diff(tc.wantHeader[k], r.header.Values(k)); diff != "" {
					t.Errorf("header %s (-want +got):\n%s", k, diff)
				}
			}
		})
	}
	// The test paths too are behind the credential check.
	if r := do(t, "GET", srv.URL+"/big?bytes=5", nil, ""); r.status != 401 {
		t.Errorf("/big without a token: %d", r.status)
	}
}

// TestEchoBig: /big streams; reading a large answer needs no large buffer
// on either side.
func TestEchoBig(t *testing.T) {
	e := NewEcho(func(string) bool { return true }, EchoOptions{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/big?bytes=67108864", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		for _, b := range buf[:k] {
			if b != 0 {
				t.Fatal("non-zero byte")
			}
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != 64<<20 || resp.ContentLength != 64<<20 {
		t.Errorf("read %d bytes, Content-Length %d", n, resp.ContentLength)
	}
}

func TestEchoBodyLimit(t *testing.T) {
	e := NewEcho(func(string) bool { return true }, EchoOptions{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	auth := map[string]string{"Authorization": "Bearer x"}
	if got := echoReplyOf(t, do(t, "PUT", srv.URL+"/x", auth, strings.Repeat("a", 16<<20))); got.BodyBytes != 16<<20 {
		t.Errorf("body_bytes %d", got.BodyBytes)
	}
	if r := do(t, "PUT", srv.URL+"/x", auth, strings.Repeat("a", 16<<20+1)); r.status != 413 {
		t.Errorf("16 MiB + 1: %d", r.status)
	}
}

// TestEchoStreamFlushes: with the second line an hour away, reading the
// first proves it was flushed on its own; closing early frees the
// handler, or srv.Close would wait that hour.
func TestEchoStreamFlushes(t *testing.T) {
	e := NewEcho(func(string) bool { return true }, EchoOptions{})
	srv := httptest.NewServer(e)
	req, _ := http.NewRequest("GET", srv.URL+"/stream?chunks=2&interval=1h", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "{\"n\":1}\n" {
		t.Errorf("first line %q %v", line, err)
	}
	resp.Body.Close()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream handler is still running after the client left")
	}
}

func TestNewEchoNilValid(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewEcho accepted a nil valid")
		}
	}()
	NewEcho(nil, EchoOptions{})
}
