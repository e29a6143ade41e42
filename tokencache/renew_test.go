package tokencache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/exchange"
)

// renewAll calls Renew n times at once and returns what each got.
func renewAll(c *Cache, n int) ([]Renewal, []error) {
	rs, errs := make([]Renewal, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { rs[i], errs[i] = c.Renew(context.Background()) })
	}
	wg.Wait()
	return rs, errs
}

// TestRenewDeduplicates: 100 Renew calls at once cost one exchange, which
// they all report, counted with trigger "reload"; afterwards no stray
// exchange follows, and the token's own schedule goes on from the new one.
// The exchange takes 50 ms, as a real one does: in virtual time an
// instant one would end before the other goroutines had called Renew,
// and their calls would rightly get an exchange of their own.
func TestRenewDeduplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var seen []Exchange
		src := &fakeSource{life: time.Hour, onFetch: func(context.Context) error { time.Sleep(50 * time.Millisecond); return nil }}
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5), OnExchange: func(e Exchange) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, e)
		}})
		time.Sleep(10 * time.Second)

		rs, errs := renewAll(c, 100)
		for i := range rs {
			if errs[i] != nil || rs[i].Result != "ok" || rs[i].Trigger != "reload" || rs[i].Token.Value.Reveal() != "tok-2" || rs[i].Duration != 50*time.Millisecond {
				t.Fatalf("Renew %d: %+v %q, %v; want ok, reload, tok-2, 50ms", i, rs[i].Exchange, rs[i].Token.Value.Reveal(), errs[i])
			}
		}
		synctest.Wait()
		if n := src.count(); n != 2 {
			t.Fatalf("exchanges = %d, want 2 (start + one renewal for 100 calls)", n)
		}
		if got := mustToken(t, c).Value.Reveal(); got != "tok-2" {
			t.Errorf("token after Renew = %s, want tok-2", got)
		}
		mu.Lock()
		if diff := cmp.Diff([]string{"initial", "reload"}, []string{seen[0].Trigger, seen[1].Trigger}); diff != "" {
			t.Errorf("triggers (-want +got):\n%s", diff)
		}
		mu.Unlock()

		// The next scheduled renewal is due 0.61 (0.66 less half the jitter window, Rand 0.5) of the renewed token's
		// lifetime (1 h from the end of its 50 ms exchange) after it.
		time.Sleep(time.Hour)
		synctest.Wait()
		src.mu.Lock()
		defer src.mu.Unlock()
		if got, want := src.starts[2].Sub(src.starts[1]), time.Duration(0.61*float64(time.Hour+50*time.Millisecond)); got != want {
			t.Errorf("scheduled renewal %v after the Renew's exchange, want %v", got, want)
		}
	})
}

// TestRenewDuringExchange: Renew calls made while an exchange is in
// flight (here one a Renew started, blocked at the service) are answered
// by that exchange; none starts another.
func TestRenewDuringExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour}
		c := start(t, src, Options{Route: "r"})
		time.Sleep(10 * time.Second)
		block := make(chan struct{})
		src.set(func(f *fakeSource) { f.block = block })

		var wg sync.WaitGroup
		var first Renewal
		wg.Go(func() { first, _ = c.Renew(context.Background()) })
		synctest.Wait() // the exchange is in flight, blocked
		if n := src.count(); n != 2 {
			t.Fatalf("exchanges = %d, want the renewal in flight", n)
		}
		rs := make([]Renewal, 20)
		for i := range rs {
			wg.Go(func() { rs[i], _ = c.Renew(context.Background()) })
		}
		synctest.Wait()
		close(block)
		wg.Wait()
		synctest.Wait()
		time.Sleep(5 * time.Second) // past MinGap: a stray wake-up would show
		synctest.Wait()
		if n := src.count(); n != 2 {
			t.Errorf("exchanges = %d, want 2: Renew during a renewal must not start another", n)
		}
		for i, r := range append(rs, first) {
			if r.Token.Value.Reveal() != "tok-2" {
				t.Errorf("Renew %d got %q, want tok-2", i, r.Token.Value.Reveal())
			}
		}
	})
}

// TestRenewDuringScheduledExchange: a Renew while a scheduled renewal is
// in flight is answered by it, with its trigger.
func TestRenewDuringScheduledExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: 10 * time.Second}
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		block := make(chan struct{})
		src.set(func(f *fakeSource) { f.block = block })
		time.Sleep(6600 * time.Millisecond) // past 0.61 of 10 s, the renewal with Rand 0.5
		synctest.Wait()
		if n := src.count(); n != 2 {
			t.Fatalf("exchanges = %d, want the scheduled renewal in flight", n)
		}
		var r Renewal
		var err error
		done := make(chan struct{})
		go func() { defer close(done); r, err = c.Renew(context.Background()) }()
		synctest.Wait()
		close(block)
		<-done
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := src.count(); n != 2 || err != nil || r.Trigger != "scheduled" || r.Token.Value.Reveal() != "tok-2" {
			t.Errorf("exchanges %d, Renew %+v %v; want 2 exchanges and the scheduled one's tok-2", n, r.Exchange, err)
		}
	})
}

// TestRenewKeepsMinGap: a Renew right after an exchange starts its own
// exactly MinGap after that one started, to the nanosecond.
func TestRenewKeepsMinGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour}
		c := start(t, src, Options{Route: "r"})
		time.Sleep(200 * time.Millisecond)
		if _, err := c.Renew(context.Background()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]time.Duration{MinGap}, src.gaps()); diff != "" {
			t.Errorf("gap before the renewal (-want +got):\n%s", diff)
		}
		// Back to back: each Renew after the last answered waits MinGap.
		for range 3 {
			if _, err := c.Renew(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff([]time.Duration{MinGap, MinGap, MinGap, MinGap}, src.gaps()); diff != "" {
			t.Errorf("gaps between renewals (-want +got):\n%s", diff)
		}
	})
}

// TestRenewInBackoff: a Renew does not wait out the backoff of a failing
// route (a rejected credential waits 30-60 s), only MinGap; it reports
// the exchange's failure and result.
func TestRenewInBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := &exchange.Error{Op: "x", Status: 400, Message: "invalid_grant"}
		src := &fakeSource{fail: bad}
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		time.Sleep(2 * time.Second) // the retry is due 45 s after the start

		r, err := c.Renew(context.Background())
		if !errors.Is(err, bad) || r.Result != "rejected" || r.Trigger != "reload" || !r.Token.Value.Empty() {
			t.Errorf("Renew = %+v, %v; want the rejection", r.Exchange, err)
		}
		if diff := cmp.Diff([]time.Duration{2 * time.Second}, src.gaps()); diff != "" {
			t.Errorf("gaps (-want +got):\n%s", diff)
		}

		src.set(func(f *fakeSource) { f.fail, f.life = nil, time.Hour })
		r, err = c.Renew(context.Background())
		if err != nil || r.Result != "ok" {
			t.Fatalf("Renew once the credential is fixed = %+v, %v", r.Exchange, err)
		}
		if st := c.Status(); st.State != "valid" {
			t.Errorf("status after the renewal = %+v", st)
		}
	})
}

// TestRenewStopAndContext: a Renew whose ctx ends returns ctx's error
// while the exchange goes on; a Renew waiting at shutdown, and one after,
// get ErrStopped.
func TestRenewStopAndContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		src := &fakeSource{life: time.Hour}
		c := New(src, Options{Route: "r"})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		synctest.Wait()
		time.Sleep(5 * time.Second)
		src.set(func(f *fakeSource) { f.block = block })

		short, cancelShort := context.WithTimeout(context.Background(), time.Second)
		defer cancelShort()
		if _, err := c.Renew(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Renew with an expired ctx = %v, want DeadlineExceeded", err)
		}
		if n := src.count(); n != 2 {
			t.Errorf("exchanges = %d, want the renewal still in flight", n)
		}

		var err error
		waited := make(chan struct{})
		go func() { defer close(waited); _, err = c.Renew(context.Background()) }()
		synctest.Wait()
		cancel()
		<-done
		<-waited
		if !errors.Is(err, ErrStopped) {
			t.Errorf("Renew waiting at shutdown = %v, want ErrStopped", err)
		}
		if _, err := c.Renew(context.Background()); !errors.Is(err, ErrStopped) {
			t.Errorf("Renew after shutdown = %v, want ErrStopped", err)
		}
	})
}

// TestRenewBeforeRun: a Renew made before Run starts is answered by the
// first exchange.
func TestRenewBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour}
		c := New(src, Options{Route: "r"})
		var r Renewal
		var err error
		got := make(chan struct{})
		go func() { defer close(got); r, err = c.Renew(context.Background()) }()
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		<-got
		synctest.Wait()
		if err != nil || r.Token.Value.Reveal() != "tok-1" || src.count() != 1 {
			t.Errorf("Renew before Run = %+v %v after %d exchanges; want the first exchange's tok-1", r.Exchange, err, src.count())
		}
		cancel()
		<-done
	})
}
