package tokencache

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// alwaysRefused plays a proxy's request to a path that answers 401
// whatever the token: it reports the token to Invalidate and, when that
// gives another, replays with it (refused too). It returns the token it
// ended with.
func alwaysRefused(t *testing.T, c *Cache) exchange.Token {
	t.Helper()
	tok := mustToken(t, c)
	fresh, err := c.Invalidate(context.Background(), tok)
	if err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	return fresh
}

// TestUpstream401RenewalsBackOff: 100 requests over a minute to a path
// that refuses every token cost at most 7 exchanges (the first, then
// renewals 1, 2, 4, 8, 16 and 32 s apart), not one a second; renewals
// held back are counted; a request that succeeds resets the back-off, so
// the next 401 renews at once; and the route's token keeps being served
// throughout (a path that answers 200 is unaffected).
func TestUpstream401RenewalsBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour}
		var suppressed atomic.Int64
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5), OnRenewalSuppressed: func() { suppressed.Add(1) }})
		began := time.Now()
		for range 100 {
			alwaysRefused(t, c)
			time.Sleep(600 * time.Millisecond)
			synctest.Wait()
		}
		if n := src.count(); n > 7 {
			t.Errorf("%d exchanges in %v to a path that refuses every token, want at most 7 (gaps %v)", n, time.Since(began), src.gaps())
		}
		if suppressed.Load() < 80 {
			t.Errorf("%d renewals counted as held back, want most of 100", suppressed.Load())
		}
		// Another path answers 200 meanwhile: its token is served.
		if _, err := c.Token(context.Background()); err != nil {
			t.Fatalf("Token while backed off: %v", err)
		}

		c.Succeeded()
		before := src.count()
		time.Sleep(MinGap) // the gap between any two exchanges
		tok := mustToken(t, c)
		fresh, err := c.Invalidate(context.Background(), tok)
		if err != nil || fresh.Value.Equal(tok.Value) || src.count() != before+1 {
			t.Errorf("after a success, a 401 renewed %d times (token %v, err %v), want once at once", src.count()-before, fresh.Value, err)
		}
	})
}

// TestUpstream401OnAcceptedTokenRenewsAtOnce: a token obtained by a
// 401-triggered renewal that requests then succeeded with is no sign of
// a path that refuses every token: its later rejection (a revocation)
// renews at once.
func TestUpstream401OnAcceptedTokenRenewsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour}
		c := start(t, src, Options{Route: "r"})
		fresh := alwaysRefused(t, c) // renewed: tok-2
		c.Succeeded()                // tok-2 works
		time.Sleep(time.Minute)
		again, err := c.Invalidate(context.Background(), fresh)
		if err != nil || again.Value.Equal(fresh.Value) || src.count() != 3 {
			t.Errorf("revoked tok-2: got %v, %v after %d exchanges, want a third token at once", again.Value, err, src.count())
		}
	})
}

// TestSucceededIsFree: on the hot path, with no back-off to end and the
// token already marked, Succeeded allocates nothing (and takes no lock:
// see its body).
func TestSucceededIsFree(t *testing.T) {
	c := New(&fakeSource{}, Options{Route: "r"})
	c.publish(c.schedule(exchange.Token{Value: secret.New("tok"), Expiry: time.Now().Add(time.Hour)}, time.Now()))
	c.Succeeded()
	if n := testing.AllocsPerRun(1000, c.Succeeded); n != 0 {
		t.Errorf("Succeeded allocates %v times", n)
	}
}
