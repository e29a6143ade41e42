package proxy

// Stray answers never cross identities: two routes in front of one
// upstream never share a connection, so an answer an upstream sends where
// none belongs reaches, at worst, a client of the same route.

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/internal/logtest"
)

// strayLater answers, then sends a stray answer 40 ms later; strayNow
// sends it right after (a separate write: its own TLS record).
func strayTiming(req *http.Request) string {
	own := ownAnswer(req)
	switch req.URL.Path {
	case "/stray-later":
		return own + split + pause + split + strayAnswer
	case "/stray-now":
		return own + split + strayAnswer
	}
	return own
}

// TestStrayAnswerNeverReachesAnotherRoute: route A's request gets an
// extra answer from the upstream (40 ms later, or right after); route
// B's next request, on the same upstream, never receives it. 100 times
// each.
func TestStrayAnswerNeverReachesAnotherRoute(t *testing.T) {
	for _, path := range []string{"/stray-later", "/stray-now"} {
		t.Run(path[1:], func(t *testing.T) {
			log, _ := logtest.New(t)
			api := newRawAPI(t, "https", strayTiming)
			tr := wireTransport(t, api)
			m := NewMetrics(prometheus.NewRegistry())
			a := serveReverse(t, NewReverse(wireRoute("a", "https", api), tr, m, log), log)
			b := serveReverse(t, NewReverse(wireRoute("b", "https", api), tr, m, log), log)
			crossed, sameRoute := 0, 0
			for i := range 100 {
				status, _, body := call(t, &http.Client{Transport: &http.Transport{}}, "GET", a+path)
				if strings.Contains(body, "STRAY") {
					// The previous round's stray reached route A's own
					// next request: on a loaded machine it can land after
					// that request was sent, which no HTTP/1.1 client can
					// tell apart. It stayed within the route.
					sameRoute++
					continue
				}
				if status != http.StatusOK || body != "own:"+path {
					t.Fatalf("%d: route A's GET %s = %d %q", i, path, status, body)
				}
				time.Sleep(time.Millisecond)
				status, stray, body := call(t, &http.Client{Transport: &http.Transport{}}, "GET", b+"/own")
				if stray != "" || strings.Contains(body, "STRAY") {
					crossed++
				} else {
					assertOwnAnswer(t, fmt.Sprintf("%d: route B's next request", i), status, stray, body)
				}
				time.Sleep(50 * time.Millisecond) // let the stray answer land before the next round
			}
			if crossed > 0 {
				t.Errorf("route B's client received route A's stray answer %d times in 100", crossed)
			}
			t.Logf("route A's own next request received its stray %d times in 100", sameRoute)
		})
	}
}

// TestMeasureStrayRateOneRoute measures how often an answer the upstream
// sends right after another reaches the next request of the same route.
// It is a measurement, not a pass/fail test: run it with
// CREDPROXY_MEASURE_STRAY=1 (and -v), on a loaded machine.
func TestMeasureStrayRateOneRoute(t *testing.T) {
	if os.Getenv("CREDPROXY_MEASURE_STRAY") == "" {
		t.Skip("a measurement: set CREDPROXY_MEASURE_STRAY=1")
	}
	log, _ := logtest.New(t)
	api := newRawAPI(t, "https", strayTiming)
	tr := wireTransport(t, api)
	a := serveReverse(t, NewReverse(wireRoute("a", "https", api), tr, NewMetrics(prometheus.NewRegistry()), log), log)
	const n = 100
	strays, failed := 0, 0
	for range n {
		if status, _, body := call(t, &http.Client{Transport: &http.Transport{}}, "GET", a+"/stray-now"); status != http.StatusOK {
			t.Fatalf("GET /stray-now = %d %q", status, body)
		}
		status, stray, body := call(t, &http.Client{Transport: &http.Transport{}}, "GET", a+"/own")
		switch {
		case stray != "" || strings.Contains(body, "STRAY"):
			strays++
		case status != http.StatusOK:
			failed++
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("stray answer reached the next request %d/%d times; %d requests failed instead", strays, n, failed)
}

// TestPoolsPerRouteAndIdentity: a route's pools are its own, the same
// for its reverse and forward proxies; identity pools are bounded, the
// least recently used dropped first.
func TestPoolsPerRouteAndIdentity(t *testing.T) {
	tr := NewTransport(nil)
	a, b := tr.ForRoute("a"), tr.ForRoute("b")
	if a == b || a != tr.ForRoute("a") || a.h1 == tr.h1 || a.h1 == b.h1 {
		t.Fatalf("ForRoute: a=%p b=%p a again=%p base=%p", a, b, tr.ForRoute("a"), tr)
	}
	made := 0
	k := newKeyedPools(2, func() *Transport { made++; return tr.ForRoute("a").guardedClone() })
	x, y := k.get("x"), k.get("y")
	if x == y || k.get("x") != x {
		t.Fatal("identity pools: one key, one pool; two keys, two pools")
	}
	k.get("z") // drops y, the least recently used
	if k.get("x") != x || made != 3 {
		t.Fatalf("x was dropped, or pools were made %d times (want 3)", made)
	}
	if k.get("y") == y {
		t.Fatal("y was kept beyond the bound")
	}
	if id := a.ForIdentity("key-1"); id == a || id != a.ForIdentity("key-1") || id.h1.DialTLSContext == nil {
		t.Fatal("ForIdentity: a guarded pool of its own per key")
	}
}
