package tokencache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// tooManyRequests is a 429 asking for an hour.
var tooManyRequests = &exchange.Error{Op: "x", Status: 429, Message: "Too many requests", RetryAfter: time.Hour}

// TestRetryAfterNeverLetsTokenExpire is issue 15's case: 8 s tokens, and
// the service answers one renewal with 429 Retry-After: 3600, then
// answers normally again. Honouring the hour let the held token expire
// and 24 of 60 requests (one a second) fail closed. The retry must come
// while the held token is still usable, so that none does, at either
// end of the jitter; the log says that the service's wish was cut short,
// with both durations.
func TestRetryAfterNeverLetsTokenExpire(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999999} {
		t.Run(fmt.Sprintf("rand %v", jitter), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := logtest.NewHygiene(t)
				log, logs := h.Logger("logs")
				src := &fakeSource{answer: func(n int) (exchange.Token, error) {
					if n == 2 {
						return exchange.Token{}, tooManyRequests
					}
					tok := fmt.Sprintf("tok-%d", n)
					h.Secret(tok)
					return exchange.Token{Value: secret.New(tok), Expiry: time.Now().Add(8 * time.Second)}, nil
				}}
				c := start(t, src, Options{Route: "r", Rand: constRand(jitter), Logger: log})
				failed := 0
				for range 60 {
					time.Sleep(time.Second)
					if _, err := tokenNow(c); err != nil {
						failed++
					}
				}
				if failed > 0 {
					t.Errorf("%d of 60 requests failed closed after one 429 with Retry-After: 3600", failed)
				}
				line := lineWith(logs.String(), "Retry-After")
				for _, want := range []string{`"level":"warn"`, `"retry_after":3600,`, `"retry_in":`, `"old_token_usable_for":`} {
					if !strings.Contains(line, want) {
						t.Errorf("log line about the shortened Retry-After lacks %s: %q", want, line)
					}
				}
			})
		})
	}
}

// tokenNow is Token for a request that must not wait: a token that is
// usable now, or an error. (Token itself would wait up to TokenWait.)
func tokenNow(c *Cache) (exchange.Token, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s := c.cur.Load(); s != nil && s.usable(time.Now()) {
		return s.tok, nil
	}
	return c.Token(ctx)
}

// TestRetryAfterCapHalvesWhatIsLeft: a service that answers every renewal
// of a 30-minute token with Retry-After: 3600 gets retries at half the
// usable time left each time (never less than MinGap apart), a dozen at
// most rather than one a second, and the last before the token stops
// being usable; once none is held, the hour is honoured.
func TestRetryAfterCapHalvesWhatIsLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const life = 30 * time.Minute
		var mu sync.Mutex
		refuse := false
		src := &fakeSource{answer: func(n int) (exchange.Token, error) {
			mu.Lock()
			defer mu.Unlock()
			if refuse {
				return exchange.Token{}, tooManyRequests
			}
			return exchange.Token{Value: secret.New(fmt.Sprintf("tok-%d", n)), Expiry: time.Now().Add(life)}, nil
		}}
		t0 := time.Now()
		start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		mu.Lock()
		refuse = true
		mu.Unlock()
		usableUntil := t0.Add(life - 10*time.Second)
		time.Sleep(life + 2*time.Hour)
		synctest.Wait()

		src.mu.Lock()
		starts := append([]time.Time(nil), src.starts[1:]...)
		src.mu.Unlock()
		if got, want := starts[0].Sub(t0), time.Duration(0.61*float64(life)); got != want { // Rand 0.5: 0.66 less half the jitter window
			t.Fatalf("renewal at %v, want %v", got, want)
		}
		i := 1
		for ; i < len(starts) && starts[i].Before(usableUntil); i++ {
			want := max(MinGap, usableUntil.Sub(starts[i-1])/2)
			if got := starts[i].Sub(starts[i-1]); got != want {
				t.Errorf("retry %d came %v after the one before, want %v (half the usable time left)", i, got, want)
			}
		}
		if i > 12 {
			t.Errorf("%d attempts before the token stopped being usable, want at most 12", i)
		}
		if last := usableUntil.Sub(starts[i-1]); last > 2*MinGap {
			t.Errorf("the last attempt while the token was usable came %v before it stopped being usable, want within %v", last, 2*MinGap)
		}
		// The first attempt with no usable token is the MinGap-bound one
		// just past usableUntil; after it fails, the hour is honoured.
		if i+1 >= len(starts) {
			t.Fatalf("no attempt after the token stopped being usable: %d attempts", len(starts))
		}
		if got := starts[i+1].Sub(starts[i]); got != time.Hour {
			t.Errorf("with no usable token, the retry came %v after a Retry-After of 1h", got)
		}
	})
}
