package admin

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/tokencache"
)

// TestEdgeInReadyzAndStatus: /readyz, /status.json and the status page
// say per route whether client keys, a request policy and a peer check
// are on, with the route's denials by reason, and whether the audit log
// is on and where.
func TestEdgeInReadyzAndStatus(t *testing.T) {
	valid := func(name string) func() tokencache.Status {
		return func() tokencache.Status {
			return tokencache.Status{Route: name, Kind: "static", State: "valid", Ready: true}
		}
	}
	var mu sync.Mutex
	denied := map[string]uint64{"denied_by_policy": 3, "client_key_required": 1}
	a := New(Options{Registry: prometheus.NewRegistry(), AuditLog: "/var/log/credproxy/audit.log", Routes: []Route{
		{Name: "locked", Upstream: "https://l.example", Status: valid("locked"), Edge: RouteEdge{Keys: true, Policy: true, Peers: true,
			Denied: func() map[string]uint64 { mu.Lock(); defer mu.Unlock(); return denied }}},
		{Name: "open", Upstream: "https://o.example", Status: valid("open")},
	}})
	srv := httptest.NewServer(a)
	defer srv.Close()

	type edge struct {
		ClientKeys bool              `json:"client_keys"`
		Policy     bool              `json:"policy"`
		PeerCheck  bool              `json:"peer_check"`
		Denied     map[string]uint64 `json:"denied"`
	}
	for _, path := range []string{"/readyz", "/status.json"} {
		_, body := get(t, srv.URL+path)
		var got struct {
			AuditLog string `json:"audit_log"`
			Routes   []struct {
				Route string `json:"route"`
				Edge  edge   `json:"edge"`
			}
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Routes) != 2 {
			t.Fatalf("%s: %s (%v)", path, body, err)
		}
		if got.AuditLog != "/var/log/credproxy/audit.log" {
			t.Errorf("%s: audit_log = %q", path, got.AuditLog)
		}
		l, o := got.Routes[0].Edge, got.Routes[1].Edge
		if !l.ClientKeys || !l.Policy || !l.PeerCheck || l.Denied["denied_by_policy"] != 3 || l.Denied["client_key_required"] != 1 {
			t.Errorf("%s: locked route's edge %+v", path, l)
		}
		if o.ClientKeys || o.Policy || o.PeerCheck || len(o.Denied) != 0 {
			t.Errorf("%s: open route's edge %+v", path, o)
		}
	}

	_, page := get(t, srv.URL+"/")
	rows := pageRows(page)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	if got := rows[0].cells["edge"]; got != "keys policy peers 4 denied: no key 1 policy 3" {
		t.Errorf("locked route's edge cell: %q", got)
	}
	if got := rows[1].cells["edge"]; got != "open" {
		t.Errorf("open route's edge cell: %q, want open", got)
	}
	if !strings.Contains(page, `<span id="audit" class="muted">audit log: /var/log/credproxy/audit.log</span>`) {
		t.Errorf("the page does not say where the audit log goes:\n%s", page)
	}

	// Off: said so.
	off := httptest.NewServer(New(Options{Routes: []Route{{Name: "r", Status: valid("r")}}}))
	defer off.Close()
	if _, page := get(t, off.URL+"/"); !strings.Contains(page, "audit log: off") {
		t.Errorf("the page does not say the audit log is off")
	}
	if _, body := get(t, off.URL+"/readyz"); !strings.Contains(body, `"audit_log": "off"`) {
		t.Errorf("/readyz does not say the audit log is off: %s", body)
	}
}
