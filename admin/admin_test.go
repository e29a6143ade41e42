package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/tokencache"
)

func TestAdmin(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm := NewMetrics(reg)
	ready := tokencache.Status{Route: "a", State: "valid", Ready: true}
	pending := tokencache.Status{Route: "b", State: "pending", LastError: "csp: HTTP 503"}
	cur := []tokencache.Status{ready, pending}
	var mu sync.Mutex
	statuses := []func() tokencache.Status{
		func() tokencache.Status { mu.Lock(); defer mu.Unlock(); return cur[0] },
		func() tokencache.Status { mu.Lock(); defer mu.Unlock(); return cur[1] },
	}
	admin := New(reg, statuses)
	srv := httptest.NewServer(admin)
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, `"state": "pending"`) || !strings.Contains(body, "csp: HTTP 503") {
		t.Errorf("/readyz with a pending route = %d %s", code, body)
	}
	mu.Lock()
	cur[1] = tokencache.Status{Route: "b", State: "valid", Ready: true}
	mu.Unlock()
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz all ready = %d %s", code, body)
	}
	admin.ShuttingDown()
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "shutting_down") {
		t.Errorf("/readyz while shutting down = %d %s", code, body)
	}
	tm.WatchRoute("a", statuses[0])
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `credproxy_route_ready{route="a"} 1`) {
		t.Errorf("/metrics = %d, lacks the route gauge", code)
	}
}
