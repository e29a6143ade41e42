package demo

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func postForm(t *testing.T, u, auth string, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

func TestCSPGrants(t *testing.T) {
	csp := NewCSP(CSPOptions{APIToken: "user-api-token", ClientID: "appId", ClientSecret: "a+b/c=d", TTL: 30 * time.Minute})
	srv := httptest.NewServer(csp)
	defer srv.Close()

	resp, body := postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"user-api-token"}})
	if resp.StatusCode != 200 || body["expires_in"] != float64(1799) || body["token_type"] != "bearer" {
		t.Fatalf("api-token grant: %d %v", resp.StatusCode, body)
	}
	if tok, _ := body["access_token"].(string); !csp.Valid(tok) {
		t.Errorf("issued token not valid")
	}
	resp, body = postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"wrong-token"}})
	if resp.StatusCode != 400 || strings.Contains(body["message"].(string), "wrong-token") || body["requestId"] == "" {
		t.Errorf("bad api token: %d %v", resp.StatusCode, body)
	}

	// Raw Basic: base64("appId:a+b/c=d") is accepted; the RFC 6749
	// form-encoded variant base64("appId:a%2Bb%2Fc%3Dd") is not.
	raw, formEncoded := "Basic YXBwSWQ6YStiL2M9ZA==", "Basic YXBwSWQ6YSUyQmIlMkZjJTNEZA=="
	grant := url.Values{"grant_type": {"client_credentials"}, "orgId": {"o1"}}
	if resp, body := postForm(t, srv.URL+CSPAppPath, raw, grant); resp.StatusCode != 200 {
		t.Errorf("raw Basic: %d %v", resp.StatusCode, body)
	}
	if resp, _ := postForm(t, srv.URL+CSPAppPath, formEncoded, grant); resp.StatusCode != 401 {
		t.Errorf("form-encoded Basic: %d, want 401", resp.StatusCode)
	}
	if resp, _ := postForm(t, srv.URL+CSPAppPath, raw, url.Values{"grant_type": {"password"}}); resp.StatusCode != 400 {
		t.Errorf("wrong grant: %d, want 400", resp.StatusCode)
	}
	reqs := csp.Requests()
	if len(reqs) != 5 || reqs[2].Form.Get("orgId") != "o1" || csp.Exchanges() != 2 {
		t.Errorf("recorded %d requests, %d exchanges", len(reqs), csp.Exchanges())
	}
}

func TestCSPTestVector(t *testing.T) {
	csp := NewCSP(CSPOptions{ClientID: "appId", ClientSecret: "appSecret"})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	if resp, _ := postForm(t, srv.URL+CSPAppPath, "Basic YXBwSWQ6YXBwU2VjcmV0", url.Values{"grant_type": {"client_credentials"}}); resp.StatusCode != 200 {
		t.Errorf("PROTOCOLS test vector refused: %d", resp.StatusCode)
	}
}

func TestCSPExpiryRevokeFaults(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	csp := NewCSP(CSPOptions{APIToken: "t", TTL: time.Minute, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	_, body := postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"t"}})
	tok := body["access_token"].(string)
	mu.Lock()
	now = now.Add(time.Minute - time.Nanosecond)
	mu.Unlock()
	if !csp.Valid(tok) {
		t.Error("expired early")
	}
	mu.Lock()
	now = now.Add(time.Nanosecond)
	mu.Unlock()
	if csp.Valid(tok) {
		t.Error("valid at expiry")
	}
	_, body = postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"t"}})
	tok = body["access_token"].(string)
	csp.Revoke(tok)
	if csp.Valid(tok) {
		t.Error("valid after revoke")
	}

	csp.SetFault(Fault{Status: 503, Body: "<html>down</html>", ContentType: "text/html", RetryAfter: "7", Times: 1})
	resp, _ := postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"t"}})
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("fault: %d", resp.StatusCode)
	}
	if resp, _ := postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"t"}}); resp.StatusCode != 200 {
		t.Errorf("fault did not clear after Times: %d", resp.StatusCode)
	}
	csp.SetExpiresIn(json.RawMessage(`"60"`))
	if _, body := postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {"t"}}); body["expires_in"] != "60" {
		t.Errorf("expires_in override: %v", body["expires_in"])
	}
}

func TestEcho(t *testing.T) {
	valid := map[string]bool{"good-token": true}
	e := NewEcho(func(tok string) bool { return valid[tok] }, EchoOptions{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	get := func(path, auth string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	for _, auth := range []string{"", "Bearer bad", "good-token", "Basic good-token"} {
		if resp, _ := get("/x", auth); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("auth %q: %d, want 401", auth, resp.StatusCode)
		}
	}
	resp, body := get("/api/v2/x?q=1", "Bearer good-token")
	if resp.StatusCode != 200 || !strings.Contains(body, `"authorized":true`) || strings.Contains(body, "good-token") {
		t.Errorf("valid: %d %s", resp.StatusCode, body)
	}
	if e.Requests() != 5 || e.Rejected() != 4 || e.LastHeader().Get("Authorization") != "Bearer good-token" {
		t.Errorf("counters %d %d", e.Requests(), e.Rejected())
	}
	if resp, _ := get("/status/418", "Bearer good-token"); resp.StatusCode != 418 {
		t.Errorf("/status/418: %d", resp.StatusCode)
	}
}

func TestEchoStreamFlushesEachLine(t *testing.T) {
	e := NewEcho(func(string) bool { return true }, EchoOptions{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/stream?chunks=2&interval=1h", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The second line comes an hour later: reading the first proves it
	// was flushed on its own.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "{\"n\":1}\n" {
		t.Errorf("first line %q %v", line, err)
	}
}
