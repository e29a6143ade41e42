package tokencache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// BenchmarkTokenHot measures Token with a valid token held: the cost every
// proxied request pays. It must not allocate.
func BenchmarkTokenHot(b *testing.B) {
	c := New(&fakeSource{}, Options{Route: "bench"})
	c.publish(c.schedule(exchange.Token{Value: secret.New("tok"), Expiry: time.Now().Add(time.Hour)}, time.Now()))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// b.Fatal would end only this worker goroutine, not the
			// benchmark: report and stop the worker instead.
			if _, err := c.Token(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTokenHotSerial is the same on one goroutine: the latency one
// request adds.
func BenchmarkTokenHotSerial(b *testing.B) {
	c := New(&fakeSource{}, Options{Route: "bench"})
	c.publish(c.schedule(exchange.Token{Value: secret.New("tok"), Expiry: time.Now().Add(time.Hour)}, time.Now()))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Token(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTokenHotPathDoesNotAllocate(t *testing.T) {
	c := New(&fakeSource{}, Options{Route: "bench"})
	c.publish(c.schedule(exchange.Token{Value: secret.New("tok"), Expiry: time.Now().Add(time.Hour)}, time.Now()))
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Token(ctx) }); n != 0 {
		t.Errorf("Token allocates %v times per call, want 0", n)
	}
}

// TestFreshPeriodEndsBeforeUsableUntil checks the clock-free hot path: the
// flag that skips the clock clears preciseWindow before the token stops
// being usable, so from then on every call reads the clock, and the token
// is refused the instant usableUntil passes.
func TestFreshPeriodEndsBeforeUsableUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(&fakeSource{}, Options{Route: "r", ExpiryMargin: 10 * time.Second})
		now := time.Now()
		s := c.schedule(exchange.Token{Value: secret.New("tok"), Expiry: now.Add(time.Minute)}, now)
		c.publish(s)
		if !s.fresh.Load() || !s.usableNow() {
			t.Fatal("a new token is not fresh")
		}
		time.Sleep(time.Until(s.usableUntil) - preciseWindow - time.Nanosecond)
		if !s.fresh.Load() {
			t.Fatal("fresh cleared too early")
		}
		time.Sleep(2 * time.Nanosecond)
		synctest.Wait()
		if s.fresh.Load() {
			t.Fatal("fresh still set within preciseWindow of usableUntil")
		}
		if !s.usableNow() {
			t.Fatal("token refused before usableUntil")
		}
		time.Sleep(time.Until(s.usableUntil))
		if s.usableNow() {
			t.Fatal("token served at usableUntil")
		}
	})
}

// TestStopEndsFreshPeriod checks that requests draining after shutdown
// read the clock: the timer that would end the fresh period is stopped.
func TestStopEndsFreshPeriod(t *testing.T) {
	c := New(&fakeSource{}, Options{Route: "r"})
	s := c.schedule(exchange.Token{Value: secret.New("tok"), Expiry: time.Now().Add(time.Hour)}, time.Now())
	c.publish(s)
	c.stop()
	if s.fresh.Load() {
		t.Fatal("fresh still set after stop")
	}
}
