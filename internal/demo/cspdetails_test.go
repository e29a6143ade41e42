package demo

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const detailsAPIToken = "user-api-token-details-0123456789"

// postDetails asks srv for the details of tok the way docs/protocols.md 1e says.
func postDetails(t *testing.T, srv, tok string) reply {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"tokenValue": tok})
	return do(t, http.MethodPost, srv+CSPDetailsPath, map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, string(body))
}

func TestCSPDetails(t *testing.T) {
	clk := newClock()
	expires := clk.Now().Add(20 * 24 * time.Hour)
	for _, millis := range []bool{false, true} {
		csp := NewCSP(CSPOptions{APIToken: detailsAPIToken, APITokenExpiresAt: expires, DetailsInMillis: millis, OrgID: "org-1", Now: clk.Now})
		srv := httptest.NewServer(csp)
		r := postDetails(t, srv.URL, detailsAPIToken)
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("millis %v: %d %s", millis, r.status, r.body)
		}
		var d map[string]any
		if err := json.Unmarshal(r.body, &d); err != nil {
			t.Fatal(err)
		}
		want := float64(expires.Unix())
		if millis {
			want = float64(expires.UnixMilli())
		}
		if d["expiresAt"] != want || d["createdAt"] == nil || d["orgId"] != "org-1" {
			t.Errorf("millis %v: details %s", millis, r.body)
		}
		// The quirk the client must survive: the answer holds the token.
		if d["token"] != detailsAPIToken {
			t.Errorf("millis %v: token field %v, want the API token itself", millis, d["token"])
		}
		for _, f := range []string{"acct", "allowedScopes", "deactivated", "domain", "idpId", "scope", "tokenId", "tokenName", "userId", "username"} {
			if _, ok := d[f]; !ok {
				t.Errorf("details lack %s", f)
			}
		}
		srv.Close()
	}
}

func TestCSPDetailsRefusals(t *testing.T) {
	clk := newClock()
	csp := NewCSP(CSPOptions{APIToken: detailsAPIToken, APITokenExpiresAt: clk.Now().Add(time.Hour), Now: clk.Now})
	srv := httptest.NewServer(csp)
	defer srv.Close()

	e := errorReply(t, postDetails(t, srv.URL, "some-other-token-4242"), 404)
	if e.Message != "invalid_grant: Invalid refresh token: ****4242" || e.CSPErrorCode != "540.120-340.800" || e.ModuleCode != "540" {
		t.Errorf("unknown token: %+v", e)
	}
	errorReply(t, postDetails(t, srv.URL, ""), 400)
	errorReply(t, do(t, "GET", srv.URL+CSPDetailsPath, nil, ""), 405)
	errorReply(t, postForm(t, srv.URL+CSPDetailsPath, "", url.Values{"tokenValue": {detailsAPIToken}}), 415)
	errorReply(t, do(t, "POST", srv.URL+CSPDetailsPath, map[string]string{"Content-Type": "application/json"}, "{"), 400)

	// Expired: the details no longer know it, and the grant refuses it.
	clk.Add(time.Hour)
	errorReply(t, postDetails(t, srv.URL, detailsAPIToken), 404)
	errorReply(t, postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {detailsAPIToken}}), 400)

	// Recorded apart from the token endpoints, body as sent.
	if n := len(csp.Requests()); n != 1 {
		t.Errorf("Requests holds %d, want only the one exchange", n)
	}
	dr := csp.DetailsRequests()
	if len(dr) != 6 || string(dr[0].Body) != `{"tokenValue":"some-other-token-4242"}` || dr[0].Path != CSPDetailsPath {
		t.Errorf("DetailsRequests: %d, first %+v", len(dr), dr[0])
	}
}

func TestCSPDetailsNeverExpiring(t *testing.T) {
	csp := NewCSP(CSPOptions{APIToken: detailsAPIToken})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	r := postDetails(t, srv.URL, detailsAPIToken)
	if r.status != 200 || strings.Contains(string(r.body), "expiresAt") {
		t.Errorf("a token without expiry: %d %s", r.status, r.body)
	}
}

func TestCSPDetailsFaults(t *testing.T) {
	clk := newClock()
	csp := NewCSP(CSPOptions{APIToken: detailsAPIToken, Now: clk.Now})
	srv := httptest.NewServer(csp)
	defer srv.Close()
	exchange := func() reply {
		return postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {detailsAPIToken}})
	}

	csp.SetDetailsFault(Fault{Status: 429, Body: `{"statusCode":429,"message":"Too many requests"}`, RetryAfter: "120", Times: 1})
	if r := postDetails(t, srv.URL, detailsAPIToken); r.status != 429 || r.header.Get("Retry-After") != "120" {
		t.Errorf("details fault: %d %v", r.status, r.header)
	}
	if r := postDetails(t, srv.URL, detailsAPIToken); r.status != 200 {
		t.Errorf("after Times: %d", r.status)
	}
	csp.SetDetailsFault(Fault{Status: 500})
	tokenReply(t, exchange()) // the token endpoints are not affected
	csp.ClearDetailsFault()

	// Until: an outage of a given length, on the CSP's clock.
	csp.SetFault(Fault{Status: 503, Until: clk.Now().Add(time.Minute)})
	if r := exchange(); r.status != 503 {
		t.Errorf("during the outage: %d", r.status)
	}
	clk.Add(time.Minute)
	tokenReply(t, exchange())

	// Drop: no answer at all.
	csp.SetDetailsFault(Fault{Drop: true, Times: 1})
	body := strings.NewReader(`{"tokenValue":"x"}`)
	resp, err := http.Post(srv.URL+CSPDetailsPath, "application/json", body)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("Drop answered %d", resp.StatusCode)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("Drop: %v", err)
	}
}

func TestControl(t *testing.T) {
	clk := newClock()
	csp := NewCSP(CSPOptions{APIToken: detailsAPIToken, Now: clk.Now})
	mux := http.NewServeMux()
	mux.Handle("/demo/", NewControl(csp))
	mux.Handle("/", csp)
	srv := httptest.NewServer(mux) // 127.0.0.1
	defer srv.Close()
	exchange := func() int {
		return postForm(t, srv.URL+CSPAPITokenPath, "", url.Values{"api_token": {detailsAPIToken}}).status
	}

	r := do(t, "POST", srv.URL+ControlPath+"?seconds=90", nil, "")
	var a struct {
		OutageUntil *time.Time `json:"outage_until"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &a) != nil || a.OutageUntil == nil || !a.OutageUntil.Equal(clk.Now().Add(90*time.Second)) {
		t.Fatalf("POST outage: %d %s", r.status, r.body)
	}
	if st, ds := exchange(), postDetails(t, srv.URL, detailsAPIToken).status; st != 503 || ds != 503 {
		t.Errorf("during the outage: exchange %d, details %d, want 503", st, ds)
	}
	clk.Add(90 * time.Second)
	if st := exchange(); st != 200 {
		t.Errorf("after the outage: %d", st)
	}

	do(t, "POST", srv.URL+ControlPath+"?seconds=600", nil, "")
	if r := do(t, "DELETE", srv.URL+ControlPath, nil, ""); r.status != 200 || string(r.body) != `{"outage_until":null}` {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
	if st := exchange(); st != 200 {
		t.Errorf("after DELETE: %d", st)
	}

	for _, tc := range []struct {
		desc, method, path string
		header             map[string]string
		want               int
	}{
		{"no seconds", "POST", ControlPath, nil, 400},
		{"too long", "POST", ControlPath + "?seconds=601", nil, 400},
		{"zero", "POST", ControlPath + "?seconds=0", nil, 400},
		{"GET", "GET", ControlPath, nil, 405},
		{"other path", "POST", "/demo/revoke", nil, 404},
		{"from a web page", "POST", ControlPath + "?seconds=5", map[string]string{"Origin": "https://evil.example"}, 403},
	} {
		if r := do(t, tc.method, srv.URL+tc.path, tc.header, ""); r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.desc, r.status, r.body, tc.want)
		}
	}
	if st := exchange(); st != 200 {
		t.Errorf("a refused control request changed the CSP: %d", st)
	}

	// Not on loopback: refused, whatever it asks.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", ControlPath+"?seconds=5", nil)
	req.RemoteAddr = "192.0.2.7:4242"
	NewControl(csp).ServeHTTP(rec, req)
	if diff := cmp.Diff(403, rec.Code); diff != "" || exchange() != 200 {
		t.Errorf("remote caller: %d", rec.Code)
	}
}
