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

// TestCredentialExpiryGauge: the gauge holds the expiry in seconds since
// 1970 while it is known, and the route has no series otherwise.
func TestCredentialExpiryGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	set := m.CredentialExpiry("wf")
	m.CredentialExpiry("other")(time.Time{})
	series := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "credproxy_credential_expiry_timestamp_seconds" {
				continue
			}
			if mf.GetType().String() != "GAUGE" {
				t.Errorf("type %v", mf.GetType())
			}
			for _, mt := range mf.GetMetric() {
				for _, lp := range mt.GetLabel() {
					out[lp.GetName()+"="+lp.GetValue()] = mt.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	if got := series(); len(got) != 0 {
		t.Fatalf("series before any expiry is known: %v", got)
	}
	at := time.Date(2027, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	set(at)
	if got := series(); len(got) != 1 || got["route=wf"] != float64(at.Unix())+0.5 {
		t.Errorf("series %v, want route=wf %d.5", got, at.Unix())
	}
	set(time.Time{})
	if got := series(); len(got) != 0 {
		t.Errorf("series once the expiry is unknown again: %v", got)
	}
}

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

	a := New(prometheus.NewRegistry(), []func() tokencache.Status{wf, other})
	a.ReportCredentialExpiry("wf", credStatus)
	a.EnableStatusPage([]StatusRoute{{Name: "wf", Upstream: "https://w.example", Status: wf}, {Name: "other", Upstream: "https://o.example", Status: other}})
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
