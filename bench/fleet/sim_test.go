//go:build !race

package fleet

// The simulations: each runs real caches in a synctest bubble. The race
// runtime crashes now and then on bubbles of a few hundred goroutines
// ("ThreadSanitizer: CHECK failed: tsan_rtl.cpp:346", golang/go#78156,
// open in Go 1.26.8; seen in CI at 200 sidecars), so under -race these
// tests are not compiled in and race_test.go runs them in a test binary
// built without it.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/tokencache"
)

// routes is the fleet size of the tests: 1,000 keeps `go test ./...`
// quick; `go run ./bench -fleet` runs them with 10,000.
func routes() int {
	if *routesFlag > 0 {
		return *routesFlag
	}
	return 1000
}

// simulate runs sc with p in a synctest bubble: virtual time.
func simulate(t *testing.T, sc Scenario, p Policy) *Result {
	t.Helper()
	var r *Result
	synctest.Test(t, func(*testing.T) { r = Simulate(sc, p) })
	return r
}

// TestFleetOutageContract: the token lifecycle's promise at scale.
// Outages of 5, 10 and 20 minutes at random phases of a steady fleet of
// real caches:
//
//   - a sidecar serves its old token through the outage to the end of its
//     usable life (10 s before expiry), and fails closed only after that;
//   - once the outage ends it has a token again within one backoff
//     ceiling (60 s), plus the exchange and the probe's second;
//   - an outage shorter than the least time a renewal leaves (the jitter's
//     late end, 0.66 of the lifetime: 10 min of a 30-minute token, less a
//     minute of backoff) fails no sidecar closed: checked with 5 and 9
//     minutes, 9 at three phases;
//   - the retries after the outage are spread by the backoff's jitter: the
//     peak second after it is well below the fleet's size and below
//     wavefront-proxy's, and the first 10 s carry less than half of the
//     first minute's exchanges (wavefront-proxy's fixed 10 s retry brings
//     nearly all of them back in those 10 s).
//
// A 30-minute token leaves 10 min to ride out an outage: the renewal
// jitter is taken before REFRESH_AT only, so no sidecar renews later than
// 0.66 of the lifetime, and no sidecar fails closed in an outage shorter
// than the last third of its token's life (9 minutes here, at several
// phases). In longer outages the test checks that those failing closed
// are exactly sidecars whose usable life ran out during the outage.
func TestFleetOutageContract(t *testing.T) {
	n := routes()
	base := Scenario{Routes: n, Life: Life, Latency: Latency}
	cases := []Scenario{Outage(base, 5*time.Minute, 1), Outage(base, 9*time.Minute, 1), Outage(base, 9*time.Minute, 2),
		Outage(base, 9*time.Minute, 3), Outage(base, 10*time.Minute, 1), Outage(base, 20*time.Minute, 1)}
	for _, sc := range cases {
		// Recovery takes a minute at most: no need for the 45 minutes
		// the figures show after the outage.
		sc.Duration = sc.OutageAt + sc.OutageFor + 5*time.Minute
		t.Run(sc.Name+" at "+clock(sc.OutageAt), func(t *testing.T) {
			start := time.Now()
			res := simulate(t, sc, Credproxy{})
			f := Summarize(sc, Credproxy{}, res)
			end := sc.OutageAt + sc.OutageFor
			recovered := end + tokencache.BackoffMax + 2*sc.Latency + probeEvery
			for _, e := range res.Episodes {
				usableUntil := e.Expired - 10*time.Second
				if e.From < usableUntil || e.From > usableUntil+probeEvery {
					t.Errorf("sidecar %d: no usable token from %s, its token usable until %s", e.Slot, clock(e.From), clock(usableUntil))
				}
				if usableUntil < sc.OutageAt || e.To > recovered {
					t.Errorf("sidecar %d failed closed %s-%s; outage %s-%s, recovery by %s", e.Slot, clock(e.From), clock(e.To), clock(sc.OutageAt), clock(end), clock(recovered))
				}
			}
			if sc.OutageFor < Life/3 && f.FailedClosed > 0 {
				t.Errorf("%d sidecars failed closed in a %v outage", f.FailedClosed, sc.OutageFor)
			}
			if f.PeakSecondAfter > int32(n/10) || 2*f.After10s >= f.After60s {
				t.Errorf("retries after the outage not spread: peak second %d of %d sidecars, first 10 s %d, first 60 s %d", f.PeakSecondAfter, n, f.After10s, f.After60s)
			}
			if sc.OutageFor >= 10*time.Minute {
				wf := Summarize(sc, Wavefront{}, simulate(t, sc, Wavefront{}))
				if f.PeakSecondAfter >= wf.PeakSecondAfter || f.After10s >= wf.After10s {
					t.Errorf("credproxy's burst (peak second %d, first 10 s %d) not below wavefront-proxy's (%d, %d)", f.PeakSecondAfter, f.After10s, wf.PeakSecondAfter, wf.After10s)
				}
				t.Logf("wavefront-proxy: %d failing closed (longest %v), peak second after %d, first 10 s %d", wf.FailedClosed, wf.LongestFailClosed, wf.PeakSecondAfter, wf.After10s)
			}
			t.Logf("%d sidecars: %d failing closed (longest %v), peak second after %d, first 10 s %d, first 60 s %d; %v",
				n, f.FailedClosed, f.LongestFailClosed, f.PeakSecondAfter, f.After10s, f.After60s, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestFleetRollout: after a rollout, credproxy's renewals are spread
// (the peak second after start-up is a small part of the fleet) while
// wavefront-proxy's fleet renews in one second, every sidecar, a renewal
// period later.
func TestFleetRollout(t *testing.T) {
	n := routes()
	rollout := Scenario{Name: "rollout", Routes: n, Life: Life, Latency: Latency, Duration: 2 * time.Hour}
	cp := Summarize(rollout, Credproxy{}, simulate(t, rollout, Credproxy{}))
	wf := Summarize(rollout, Wavefront{}, simulate(t, rollout, Wavefront{}))
	if cp.PeakSecond != int32(n) || cp.PeakSecondAfterStart > int32(n/20) || cp.FailedClosed > 0 {
		t.Errorf("credproxy rollout: %+v", cp)
	}
	if wf.PeakSecondAfterStart != int32(n) {
		t.Errorf("wavefront-proxy rollout: peak second after start-up %d, want all %d sidecars in one second", wf.PeakSecondAfterStart, n)
	}
	t.Logf("peak second after start-up: credproxy %d, wavefront-proxy %d", cp.PeakSecondAfterStart, wf.PeakSecondAfterStart)
}

// TestFleetRestarts: sidecars restarting at 1% a minute never leave a
// running sidecar without a token. A restart costs an exchange at once
// but saves the renewal its old instance had coming: with restarts at
// rate l per sidecar and renewals every P, a sidecar exchanges
// l/(1-exp(-l*P)) times per unit of time instead of 1/P, about half an
// exchange more per restart here (l*P = 0.01/min * 18.3 min).
func TestFleetRestarts(t *testing.T) {
	n := routes()
	restarts := Scenario{Name: "restarts", Routes: n, Life: Life, Latency: Latency, Duration: time.Hour, Steady: true, RestartPerMinute: 0.01}
	steady := restarts
	steady.RestartPerMinute = 0
	rr := simulate(t, restarts, Credproxy{})
	r := Summarize(restarts, Credproxy{}, rr)
	s := Summarize(steady, Credproxy{}, simulate(t, steady, Credproxy{}))
	if r.FailedClosed > 0 || s.FailedClosed > 0 {
		t.Errorf("failing closed without an outage: %d with restarts, %d without", r.FailedClosed, s.FailedClosed)
	}
	restarted := int64(rr.Instances - n)
	// Per restart: (l/(1-exp(-l*P)) - 1/P) / l more exchanges.
	l, p := 0.01, Credproxy{}.Period(Life).Minutes()
	want := float64(restarted) * (l/(1-math.Exp(-l*p)) - 1/p) / l
	if extra := float64(r.Exchanges - s.Exchanges); extra < 0.7*want || extra > 1.3*want {
		t.Errorf("%d restarts cost %.0f more exchanges, want about %.0f", restarted, extra, want)
	}
	t.Logf("%d restarts, %+d exchanges", restarted, r.Exchanges-s.Exchanges)
}

// TestFleetFigures writes the fleet's figures for bench/results.md (the
// "Fleet" section) and bench/fleet.svg: `go run ./bench -fleet` runs it
// with -fleet.out, 10,000 sidecars. Without -fleet.out it is skipped.
func TestFleetFigures(t *testing.T) {
	if *outFlag == "" {
		t.Skip("writes bench/fleet.json and bench/fleet.svg only with -fleet.out DIR")
	}
	n := 10000
	if *routesFlag > 0 {
		n = *routesFlag
	}
	bubble := func(f func()) { synctest.Test(t, func(*testing.T) { f() }) }
	rep := Build(n, 1, bubble, func(sc Scenario, f Figures) {
		t.Logf("%-14s %-15s mean %6.1f/s, peak second %5d, failing closed %5d (longest %v)", sc.Name, f.Policy, f.MeanPerSecond, f.PeakSecond, f.FailedClosed, f.LongestFailClosed)
	})
	b, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*outFlag, "fleet.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*outFlag, "fleet.svg"), []byte(rep.SVG()), 0o644); err != nil {
		t.Fatal(err)
	}
}
