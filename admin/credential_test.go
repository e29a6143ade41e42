package admin

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/tokencache"
)

// TestCredentialExpiryInReadyzAndStatus: /readyz and /status.json show
// credential_expires_at and its source for a route that reports one, and
// nothing for the others; an expired credential leaves readiness alone.
func TestCredentialExpiryInReadyzAndStatus(t *testing.T) {
	expires := time.Now().Add(-time.Hour).UTC().Truncate(time.Second) // already expired
	var mu sync.Mutex
	cred := credexpiry.Status{ExpiresAt: expires, Source: credexpiry.SourceLookup}
	credStatus := func() credexpiry.Status { mu.Lock(); defer mu.Unlock(); return cred }
	wf := func() tokencache.Status {
		return tokencache.Status{Route: "wf", Kind: "csp-api-token", State: "valid", Ready: true}
	}
	other := func() tokencache.Status {
		return tokencache.Status{Route: "other", Kind: "static", State: "valid", Ready: true}
	}

	a := New(Options{Registry: prometheus.NewRegistry(), Routes: []Route{
		{Name: "wf", Upstream: "https://w.example", Status: wf, Credential: credStatus},
		{Name: "other", Upstream: "https://o.example", Status: other},
	}})
	srv := httptest.NewServer(a)
	defer srv.Close()

	type route struct {
		Route               string    `json:"route"`
		CredentialExpiresAt time.Time `json:"credential_expires_at"`
		Source              string    `json:"credential_expiry_source"`
	}
	for _, path := range []string{"/readyz", "/status.json"} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d with an expired credential, want 200: readiness does not depend on it", path, resp.StatusCode)
		}
		var got struct{ Routes []route }
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Routes) != 2 {
			t.Fatalf("%s: %s (%v)", path, body, err)
		}
		if r := got.Routes[0]; !r.CredentialExpiresAt.Equal(expires) || r.Source != "lookup" {
			t.Errorf("%s: route wf %+v", path, r)
		}
		if strings.Count(body, "credential_expires_at") != 1 || strings.Count(body, "credential_expiry_source") != 1 {
			t.Errorf("%s: a route without a known expiry shows one:\n%s", path, body)
		}
	}
	mu.Lock()
	cred = credexpiry.Status{}
	mu.Unlock()
	if _, body := get(t, srv.URL+"/readyz"); strings.Contains(body, "credential_") {
		t.Errorf("/readyz with the expiry unknown again:\n%s", body)
	}
}
