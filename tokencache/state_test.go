package tokencache

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/exchange"
)

// wantStatus checks the parts of st that the route states are about.
func wantStatus(t *testing.T, when string, st Status, state State, ready bool, lastAttempt, lastSuccess time.Time) {
	t.Helper()
	if st.State != state || st.Ready != ready || !st.LastAttempt.Equal(lastAttempt) || !st.LastSuccess.Equal(lastSuccess) {
		t.Errorf("%s: state %q ready %v last attempt %v last success %v; want %q %v %v %v",
			when, st.State, st.Ready, st.LastAttempt, st.LastSuccess, state, ready, lastAttempt, lastSuccess)
	}
}

// TestStatePendingUntilTheFirstExchangeEnds: a route starting up is
// pending while its first exchange is under way, and valid once it
// succeeded, with the attempt and the success both recorded.
func TestStatePendingUntilTheFirstExchangeEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour, block: make(chan struct{})}
		t0 := time.Now()
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		wantStatus(t, "first exchange under way", c.Status(), StatePending, false, t0, time.Time{})
		close(src.block)
		synctest.Wait()
		wantStatus(t, "first exchange done", c.Status(), StateValid, true, t0, t0)
	})
}

// TestStateFailingAtStartup: a route whose first exchange failed is
// failing (red on the status page), not pending (grey): a rejected
// credential must not look like a route starting up.
func TestStateFailingAtStartup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{fail: &exchange.Error{Op: "x", Status: 401, Message: "invalid_client"}}
		t0 := time.Now()
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		st := c.Status()
		wantStatus(t, "first exchange rejected", st, StateFailing, false, t0, time.Time{})
		if st.ConsecutiveFailures != 1 || st.LastError == "" {
			t.Errorf("status = %+v", st)
		}
	})
}

// TestStateRenewingThenFailing: a renewal that fails while the token is
// still served is renewing (ready); once the token is past its margin
// with exchanges still failing, failing; a success makes it valid again.
// Last success stays at the exchange that obtained the served token.
func TestStateRenewingThenFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const life = 30 * time.Minute
		src := &fakeSource{life: life}
		t0 := time.Now()
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		src.set(func(f *fakeSource) { f.fail = errors.New("dial tcp: connection refused") })
		renewAt := t0.Add(time.Duration(0.61 * float64(life)))
		time.Sleep(time.Until(renewAt) + time.Millisecond)
		synctest.Wait()
		wantStatus(t, "renewal failing", c.Status(), StateRenewing, true, renewAt, t0)

		time.Sleep(time.Until(t0.Add(life - 10*time.Second))) // the margin: min(10 s, 10%)
		synctest.Wait()
		st := c.Status()
		wantStatus(t, "past the margin, exchanges failing", st, StateFailing, false, st.LastAttempt, t0)
		if !st.LastAttempt.After(renewAt) {
			t.Errorf("last attempt %v, want a retry after %v", st.LastAttempt, renewAt)
		}

		src.set(func(f *fakeSource) { f.fail = nil })
		time.Sleep(BackoffMax + time.Second)
		synctest.Wait()
		st = c.Status()
		wantStatus(t, "recovered", st, StateValid, true, st.LastAttempt, st.LastAttempt)
		if st.LastError != "" || st.ConsecutiveFailures != 0 {
			t.Errorf("recovered: %+v", st)
		}
	})
}

// TestStateExpiredWhileRenewalUnderWay: a token that runs out while the
// exchange to replace it has neither succeeded nor failed yet (an
// identity service that hangs, a machine that slept) is expired; once
// that exchange fails, failing.
func TestStateExpiredWhileRenewalUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const life = 10 * time.Second // margin 1 s, renewal at 6.1 s
		src := &fakeSource{life: life}
		t0 := time.Now()
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5), ExchangeTimeout: 30 * time.Second})
		src.set(func(f *fakeSource) {
			f.onFetch = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		})
		renewAt := t0.Add(6100 * time.Millisecond)
		time.Sleep(time.Until(t0.Add(life - time.Second)))
		synctest.Wait()
		wantStatus(t, "token ran out, renewal under way", c.Status(), StateExpired, false, renewAt, t0)

		time.Sleep(time.Until(renewAt.Add(30*time.Second)) + time.Millisecond)
		synctest.Wait()
		wantStatus(t, "renewal timed out", c.Status(), StateFailing, false, renewAt, t0)
	})
}

// TestStatesListed: States holds every state Status reports, once.
func TestStatesListed(t *testing.T) {
	want := []State{StatePending, StateValid, StateRenewing, StateFailing, StateExpired, StateStopped}
	if diff := cmp.Diff(want, States()); diff != "" {
		t.Errorf("States (-want +got):\n%s", diff)
	}
}

// routeState reads credproxy_route_state for route: state -> value.
func routeState(t *testing.T, g prometheus.Gatherer, route string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "credproxy_route_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["route"] == route {
				out[labels["state"]] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestRouteStateGauge: credproxy_route_state{route,state} is 1 for the
// route's state now and 0 for every other state.
func TestRouteStateGauge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		src := &fakeSource{life: time.Hour, block: make(chan struct{})}
		start(t, src, Options{Route: "r", Rand: constRand(0.5), Metrics: NewMetrics(reg)})
		want := map[string]float64{"pending": 1, "valid": 0, "renewing": 0, "failing": 0, "expired": 0, "stopped": 0}
		if diff := cmp.Diff(want, routeState(t, reg, "r")); diff != "" {
			t.Errorf("starting (-want +got):\n%s", diff)
		}
		close(src.block)
		synctest.Wait()
		want["pending"], want["valid"] = 0, 1
		if diff := cmp.Diff(want, routeState(t, reg, "r")); diff != "" {
			t.Errorf("with a token (-want +got):\n%s", diff)
		}
	})
}
