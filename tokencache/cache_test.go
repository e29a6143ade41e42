package tokencache

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// fakeSource is an exchange.Source whose answers a test scripts. It records
// when each exchange started (in the bubble's virtual time).
type fakeSource struct {
	mu       sync.Mutex
	starts   []time.Time
	life     time.Duration                       // lifetime of issued tokens; 0 = no expiry
	fail     error                               // when set, every exchange fails with it
	block    chan struct{}                       // when set, Fetch waits for it to close
	released []secret.Secret                     // tokens passed to Release
	answer   func(n int) (exchange.Token, error) // overrides life and fail
	onFetch  func(ctx context.Context) error     // called first; an error is returned
}

func (f *fakeSource) Fetch(ctx context.Context) (exchange.Token, error) {
	f.mu.Lock()
	f.starts = append(f.starts, time.Now())
	n, block, fail, life, answer, onFetch := len(f.starts), f.block, f.fail, f.life, f.answer, f.onFetch
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return exchange.Token{}, ctx.Err()
		}
	}
	if onFetch != nil {
		if err := onFetch(ctx); err != nil {
			return exchange.Token{}, err
		}
	}
	if answer != nil {
		return answer(n)
	}
	if fail != nil {
		return exchange.Token{}, fail
	}
	tok := exchange.Token{Value: secret.New(fmt.Sprintf("tok-%d", n))}
	if life > 0 {
		tok.Expiry = time.Now().Add(life)
	}
	return tok, nil
}

func (f *fakeSource) Release(_ context.Context, tok exchange.Token) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, tok.Value)
	return nil
}

func (f *fakeSource) set(fn func(f *fakeSource)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts)
}

// gaps returns the time between consecutive exchange starts.
func (f *fakeSource) gaps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(f.starts); i++ {
		out = append(out, f.starts[i].Sub(f.starts[i-1]))
	}
	return out
}

// start runs a cache over src in the current bubble and stops it when the
// test ends.
func start(t *testing.T, src exchange.Source, opts Options) *Cache {
	t.Helper()
	c := New(src, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	synctest.Wait()
	return c
}

func constRand(v float64) func() float64 { return func() float64 { return v } }

func mustToken(t *testing.T, c *Cache) exchange.Token {
	t.Helper()
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

func TestFirstExchangeAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: 30 * time.Minute}
		c := start(t, src, Options{Route: "r"})
		if src.count() != 1 {
			t.Fatalf("exchanges at start = %d, want 1", src.count())
		}
		if got := mustToken(t, c).Value; got.Reveal() != "tok-1" {
			t.Errorf("token = %s", got.Reveal())
		}
		if st := c.Status(); !st.Ready || st.State != "valid" {
			t.Errorf("status = %+v, want ready", st)
		}
	})
}

// TestRenewalWindow checks, for lifetimes from a 6 s test token to a
// 30-day session, that renewal happens within 10% of the lifetime before
// RefreshAt, and never later: a third of a 30-minute token's life is left
// to ride out an outage whatever the jitter.
func TestRenewalWindow(t *testing.T) {
	tcs := []struct {
		desc    string
		life    time.Duration
		rand    float64
		wantGap time.Duration
	}{
		{desc: "30 min, most jitter", life: 30 * time.Minute, rand: 1, wantGap: 1008 * time.Second},  // 0.56 * 1800
		{desc: "30 min, mid jitter", life: 30 * time.Minute, rand: 0.5, wantGap: 1098 * time.Second}, // 0.61 * 1800
		{desc: "30 min, no jitter", life: 30 * time.Minute, rand: 0, wantGap: 1188 * time.Second},    // 0.66 * 1800: 10 min 12 s left
		{desc: "6 s, no jitter", life: 6 * time.Second, rand: 0, wantGap: 3960 * time.Millisecond},   // 0.66 * 6 s
		{desc: "6 s, most jitter", life: 6 * time.Second, rand: 1, wantGap: 3360 * time.Millisecond}, // 0.56 * 6 s
		{desc: "30 days, no jitter", life: 30 * 24 * time.Hour, rand: 0, wantGap: time.Duration(0.66 * float64(30*24*time.Hour))},
		{desc: "1 s token still respects MinGap", life: time.Second, rand: 1, wantGap: time.Second},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := &fakeSource{life: tc.life}
				start(t, src, Options{Route: "r", Rand: constRand(tc.rand)})
				time.Sleep(tc.wantGap - time.Nanosecond)
				synctest.Wait()
				if n := src.count(); n != 1 {
					t.Fatalf("renewed %v early (exchanges = %d)", time.Nanosecond, n)
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if n := src.count(); n != 2 {
					t.Fatalf("exchanges at %v = %d, want 2", tc.wantGap, n)
				}
			})
		})
	}
}

// TestRenewalJitterSpread checks that real random jitter spreads renewals
// across the whole window, 10% of the lifetime before RefreshAt.
func TestRenewalJitterSpread(t *testing.T) {
	life := 30 * time.Minute
	lo, hi := time.Duration(0.56*float64(life)), time.Duration(0.66*float64(life))
	var minGap, maxGap time.Duration = life, 0
	for range 200 {
		c := New(&fakeSource{}, Options{})
		s := c.schedule(exchange.Token{Expiry: time.Unix(0, 0).Add(life)}, time.Unix(0, 0))
		gap := s.refreshAt.Sub(time.Unix(0, 0))
		if gap < lo || gap > hi {
			t.Fatalf("renewal at %v, outside [%v, %v]", gap, lo, hi)
		}
		minGap, maxGap = min(minGap, gap), max(maxGap, gap)
	}
	if spread := maxGap - minGap; spread < (hi-lo)/2 {
		t.Errorf("200 renewals spread over only %v of a %v window", spread, hi-lo)
	}
}

func TestBackoffSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{fail: &exchange.Error{Op: "x", Status: 503}}
		// Rand 0.5: half of each ceiling 1, 2, 4 ... 60 s. The first
		// retry (0.5 s) is raised to the 1 s minimum gap.
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		want := []time.Duration{1, 1, 2, 4, 8, 16, 30, 30, 30}
		for i := range want {
			want[i] *= time.Second
		}
		if diff := cmp.Diff(want, src.gaps()[:len(want)]); diff != "" {
			t.Errorf("gaps between attempts (-want +got):\n%s", diff)
		}
		if st := c.Status(); st.Ready || st.State != StateFailing || st.ConsecutiveFailures < 9 || st.LastError == "" {
			t.Errorf("status = %+v", st)
		}
	})
}

func TestBackoffFullJitterBounds(t *testing.T) {
	c := New(&fakeSource{}, Options{Rand: constRand(0)})
	if d := c.backoff(3, false, 0); d != 0 {
		t.Errorf("lowest jitter = %v, want 0 (MinGap is applied by the loop)", d)
	}
	c.opts.Rand = constRand(0.999999999)
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 6: 32 * time.Second, 7: time.Minute, 1000: time.Minute} {
		if d := c.backoff(n, false, 0); d > want || d < want-time.Millisecond {
			t.Errorf("backoff(%d) = %v, want just under %v", n, d, want)
		}
	}
	if d := c.backoff(1, false, 90*time.Second); d != 90*time.Second {
		t.Errorf("Retry-After 90s gave %v", d)
	}
	c.opts.Rand = constRand(0)
	if d := c.backoff(1, true, 0); d != 30*time.Second {
		t.Errorf("rejected credential, lowest jitter: %v, want 30s", d)
	}
}

func TestRejectedCredentialRetriesAtCeiling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{fail: &exchange.Error{Op: "x", Status: 400, Message: "invalid_grant"}}
		c := start(t, src, Options{Route: "r", Rand: constRand(1)})
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if diff := cmp.Diff([]time.Duration{time.Minute, time.Minute, time.Minute}, src.gaps()); diff != "" {
			t.Errorf("gaps (-want +got):\n%s", diff)
		}
		_, err := c.Token(context.Background())
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.Route != "r" {
			t.Fatalf("Token err = %v, want *UnavailableError", err)
		}
		if want := "x: HTTP 400: invalid_grant"; ue.Cause == nil || !strings.Contains(ue.Cause.Error(), want) {
			t.Errorf("cause %v lacks the service message %q", ue.Cause, want)
		}
		if want := "identity service answered 400 (invalid_grant)"; !strings.Contains(ue.Detail, want) {
			t.Errorf("detail %q lacks %q", ue.Detail, want)
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{fail: &exchange.Error{Op: "x", Status: 429, RetryAfter: 42 * time.Second}}
		start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		time.Sleep(100 * time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]time.Duration{42 * time.Second, 42 * time.Second}, src.gaps()); diff != "" {
			t.Errorf("gaps (-want +got):\n%s", diff)
		}
	})
}

// TestOutage: the old token is served through an outage until it is within
// the expiry margin, then requests fail closed; recovery needs no restart.
func TestOutageServeOldThenFailClosedThenRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const life = 30 * time.Minute
		src := &fakeSource{life: life}
		t0 := time.Now()
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5), TokenWait: 2 * time.Second})
		first := mustToken(t, c)
		src.set(func(f *fakeSource) { f.fail = errors.New("dial tcp: connection refused") })

		// Margin: min(10 s, 10% of 30 min) = 10 s.
		usableUntil := t0.Add(life - 10*time.Second)
		time.Sleep(time.Until(usableUntil) - time.Nanosecond)
		if got := mustToken(t, c); !got.Equal(first) {
			t.Fatalf("during the outage got %s, want the old token", got.Value)
		}
		if st := c.Status(); st.State != StateRenewing || !st.Ready {
			t.Errorf("status during outage = %+v", st)
		}
		if src.count() < 5 {
			t.Errorf("only %d exchanges during a 20 min outage", src.count())
		}

		time.Sleep(time.Nanosecond)
		began := time.Now()
		_, err := c.Token(context.Background())
		var ue *UnavailableError
		if !errors.As(err, &ue) {
			t.Fatalf("at the margin: err = %v, want fail closed", err)
		}
		if waited := time.Since(began); waited > 2*time.Second {
			t.Errorf("waited %v, more than TokenWait", waited)
		}
		if ue.Cause == nil || !strings.Contains(ue.Cause.Error(), "connection refused") {
			t.Errorf("cause %v lacks the transport error", ue.Cause)
		}
		if st := c.Status(); st.State != StateFailing || st.Ready {
			t.Errorf("status after expiry = %+v", st)
		}

		src.set(func(f *fakeSource) { f.fail = nil })
		// In backoff, Token fails at once (waiting could not help); a client
		// retrying every second gets a token once the next retry succeeds.
		tok, err := c.Token(context.Background())
		for err != nil {
			time.Sleep(time.Second)
			tok, err = c.Token(context.Background())
		}
		if tok.Equal(first) || !tok.Expiry.After(time.Now()) {
			t.Errorf("after recovery got %v", tok)
		}
		if st := c.Status(); st.State != "valid" || st.LastError != "" {
			t.Errorf("status after recovery = %+v", st)
		}
	})
}

func TestConcurrentDemandOneExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour, block: make(chan struct{})}
		c := start(t, src, Options{Route: "r"})
		var wg sync.WaitGroup
		errs := make(chan error, 500)
		for range 500 {
			wg.Go(func() {
				tok, err := c.Token(context.Background())
				if err == nil && tok.Value.Reveal() != "tok-1" {
					err = fmt.Errorf("got %s", tok.Value.Reveal())
				}
				errs <- err
			})
		}
		synctest.Wait()
		close(src.block)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := src.count(); n != 1 {
			t.Errorf("exchanges = %d, want 1", n)
		}
	})
}

func TestInvalidateDeduplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour}
		c := start(t, src, Options{Route: "r"})
		rejected := mustToken(t, c)
		var wg sync.WaitGroup
		got := make(chan exchange.Token, 200)
		for range 200 {
			wg.Go(func() {
				tok, err := c.Invalidate(context.Background(), rejected)
				if err != nil {
					t.Error(err)
				}
				got <- tok
			})
		}
		wg.Wait()
		close(got)
		for tok := range got {
			if tok.Value.Reveal() != "tok-2" {
				t.Fatalf("replacement = %s, want tok-2", tok.Value.Reveal())
			}
		}
		if n := src.count(); n != 2 {
			t.Errorf("exchanges = %d, want 2 (start + one renewal)", n)
		}
		if gaps := src.gaps(); gaps[0] < MinGap {
			t.Errorf("renewal %v after the first exchange, want >= %v", gaps[0], MinGap)
		}
		// A late report of the old token neither renews nor waits.
		if tok, err := c.Invalidate(context.Background(), rejected); err != nil || tok.Value.Reveal() != "tok-2" {
			t.Errorf("late Invalidate = %v, %v", tok, err)
		}
		synctest.Wait()
		if n := src.count(); n != 2 {
			t.Errorf("a stale Invalidate caused an exchange")
		}
	})
}

func TestInvalidateSameTokenBackGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{answer: func(int) (exchange.Token, error) { return exchange.Token{Value: secret.New("same")}, nil }}
		c := start(t, src, Options{Route: "r"})
		_, err := c.Invalidate(context.Background(), mustToken(t, c))
		if !errors.As(err, new(*UnavailableError)) {
			t.Fatalf("err = %v, want UnavailableError when the renewal returns the rejected token", err)
		}
		if got := mustToken(t, c).Value; got.Reveal() != "same" {
			t.Errorf("other requests must still get the token")
		}
	})
}

func TestExchangeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{block: make(chan struct{})}
		var results []string
		var mu sync.Mutex
		c := start(t, src, Options{Route: "r", ExchangeTimeout: 3 * time.Second, OnExchange: func(e Exchange) {
			mu.Lock()
			defer mu.Unlock()
			results = append(results, e.Result)
		}})
		time.Sleep(3 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff([]string{"timeout"}, results); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		if st := c.Status(); !strings.Contains(st.LastError, "deadline") {
			t.Errorf("last error = %q", st.LastError)
		}
	})
}

func TestStaticTokenRecheckedAndNeverExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{}
		c := start(t, src, Options{Route: "r", RecheckEvery: time.Minute})
		src.set(func(f *fakeSource) { f.fail = errors.New("file gone") })
		time.Sleep(24 * time.Hour)
		if got := mustToken(t, c).Value; got.Reveal() != "tok-1" {
			t.Errorf("token = %s", got.Reveal())
		}
		if n := src.count(); n < 20 {
			t.Errorf("rechecks in a day = %d", n)
		}
	})
}

func TestAlreadyExpiredTokenIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{answer: func(int) (exchange.Token, error) {
			return exchange.Token{Value: secret.New("x"), Expiry: time.Now()}, nil
		}}
		c := start(t, src, Options{Route: "r", TokenWait: time.Millisecond})
		if _, err := c.Token(context.Background()); err == nil {
			t.Fatal("an already expired token was served")
		}
	})
}

func TestShutdownReleasesAndWakesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: time.Hour}
		c := New(src, Options{Route: "r"})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		synctest.Wait()
		tok := mustToken(t, c)
		// Replace the token: the old session is released.
		if _, err := c.Invalidate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		src.mu.Lock()
		defer src.mu.Unlock()
		if diff := cmp.Diff([]secret.Secret{secret.New("tok-1"), secret.New("tok-2")}, src.released); diff != "" {
			t.Errorf("released (-want +got):\n%s", diff)
		}
		if st := c.Status(); st.State != "stopped" || st.Ready {
			t.Errorf("status after stop = %+v", st)
		}
	})
}

func TestClassify(t *testing.T) {
	tcs := []struct {
		desc string
		err  error
		want string
	}{
		{"400", &exchange.Error{Status: 400}, "rejected"},
		{"401", &exchange.Error{Status: 401}, "rejected"},
		{"429", &exchange.Error{Status: 429}, "unavailable"},
		{"503", &exchange.Error{Status: http.StatusServiceUnavailable}, "unavailable"},
		{"bad 200", &exchange.Error{Status: 200}, "invalid_response"},
		{"empty secret", fmt.Errorf("x: %w", secret.ErrEmpty), "config"},
		{"network", errors.New("connection refused"), "unavailable"},
	}
	for _, tc := range tcs {
		if got := classify(tc.err, false); got != tc.want {
			t.Errorf("%s: classify = %q, want %q", tc.desc, got, tc.want)
		}
	}
}

// TestStateNeverPrintsTheToken: the published state holds the token in
// unexported fields, which fmt prints by reflection without calling
// String; a %+v of it in a debug line or a panic must still not show
// the token.
func TestStateNeverPrintsTheToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const tok = "st4te-T0ken-value-0042"
		src := &fakeSource{answer: func(int) (exchange.Token, error) {
			return exchange.Token{Value: secret.New(tok), Expiry: time.Now().Add(time.Hour)}, nil
		}}
		c := start(t, src, Options{Route: "r"})
		s := c.cur.Load()
		if s == nil {
			t.Fatal("no token published")
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			logtest.AssertNoSecrets(t, "state "+verb, fmt.Sprintf(verb, s), tok)
			logtest.AssertNoSecrets(t, "state.tok "+verb, fmt.Sprintf(verb, struct{ tok exchange.Token }{s.tok}), tok)
		}
	})
}

// TestOnTokenAfterEverySuccess: OnToken sees each new token once, the
// first one included, only after successful exchanges, and only once
// Token already returns it.
func TestOnTokenAfterEverySuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{answer: func(n int) (exchange.Token, error) {
			if n == 2 {
				return exchange.Token{}, &exchange.Error{Status: 503, Message: "down"}
			}
			return exchange.Token{Value: secret.New(fmt.Sprintf("tok-%d", n)), Expiry: time.Now().Add(10 * time.Second)}, nil
		}}
		var mu sync.Mutex
		var seen []string
		var c *Cache
		c = New(src, Options{Route: "r", Rand: constRand(0.5), OnToken: func(tok exchange.Token) {
			held, err := c.Token(context.Background())
			mu.Lock()
			defer mu.Unlock()
			if err != nil || !held.Value.Equal(tok.Value) {
				t.Errorf("OnToken(%s) ran before the token was published (held %s, %v)", tok.Value.Reveal(), held.Value.Reveal(), err)
			}
			seen = append(seen, tok.Value.Reveal())
		}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		defer func() { cancel(); <-done }()
		// tok-1 at 0, a failure at 6.6 s, tok-3 after the backoff, and
		// renewals of tok-3 after that.
		for src.count() < 4 {
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff([]string{"tok-1", "tok-3", "tok-4"}, seen); diff != "" {
			t.Errorf("OnToken calls (-want +got):\n%s", diff)
		}
	})
}

// TestServedUntil: the time a token stops being served is its expiry
// minus the margin, for the held token only; zero for a static token.
func TestServedUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{life: 100 * time.Second}
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5)})
		tok := mustToken(t, c)
		until, ok := c.ServedUntil(tok)
		if want := tok.Expiry.Add(-10 * time.Second); !ok || !until.Equal(want) {
			t.Errorf("ServedUntil = %v %v, want %v (expiry minus the 10 s automatic margin)", until, ok, want)
		}
		if _, ok := c.ServedUntil(exchange.Token{Value: secret.New("other"), Expiry: tok.Expiry}); ok {
			t.Error("ServedUntil of a token the cache does not hold: ok")
		}
		time.Sleep(70 * time.Second) // renewed at 66 s
		synctest.Wait()
		if _, ok := c.ServedUntil(tok); ok {
			t.Error("ServedUntil of the replaced token: ok")
		}
		m := start(t, &fakeSource{life: 100 * time.Second}, Options{Route: "m", ExpiryMargin: 30 * time.Second})
		mt := mustToken(t, m)
		if until, ok := m.ServedUntil(mt); !ok || !until.Equal(mt.Expiry.Add(-30*time.Second)) {
			t.Errorf("with EXPIRY_MARGIN 30s: ServedUntil = %v, expiry %v", until, mt.Expiry)
		}
		s := start(t, &fakeSource{}, Options{Route: "s"})
		if until, ok := s.ServedUntil(mustToken(t, s)); !ok || !until.IsZero() {
			t.Errorf("static token: ServedUntil = %v %v, want zero", until, ok)
		}
	})
}

// TestHeldTokenEchoedInAFailureIsRedacted: an identity service that
// quotes the token credproxy holds (and still serves) in a later
// exchange's error does not get it into the cache's last error (/readyz,
// status.json), the error a Renew returns, or the logs; nor does the
// token it held before (a renewal does not revoke it). The exchange's
// own redactor knows only what that exchange sent and received.
func TestHeldTokenEchoedInAFailureIsRedacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const before, held = "bef0re-T0ken-1a2b3c4d", "held-L1ve-T0ken-9f8e7d"
		h := logtest.NewHygiene(t, before, held)
		log, _ := h.Logger("logs")
		src := &fakeSource{answer: func(n int) (exchange.Token, error) {
			switch n {
			case 1:
				return exchange.Token{Value: secret.New(before), Expiry: time.Now().Add(time.Hour)}, nil
			case 2:
				return exchange.Token{Value: secret.New(held), Expiry: time.Now().Add(time.Hour)}, nil
			}
			return exchange.Token{}, &exchange.Error{Op: "oauth2 exchange", Status: 400, Code: "invalid_request",
				Message: "token " + held + " still active; also " + base64.StdEncoding.EncodeToString([]byte(held)) + " and " + before}
		}}
		c := start(t, src, Options{Route: "r", Kind: "oauth2-client-credentials", Logger: log})
		mustToken(t, c)
		if _, err := c.Renew(context.Background()); err != nil {
			t.Fatal(err)
		}
		if tok := mustToken(t, c); !tok.Value.Equal(secret.New(held)) {
			t.Fatalf("second token %v", tok.Value)
		}
		time.Sleep(2 * MinGap)
		_, err := c.Renew(context.Background())
		if err == nil {
			t.Fatal("the renewal succeeded")
		}
		h.Err("Renew's error", err)
		if !exchange.IsPermanent(err) {
			t.Errorf("the redacted error lost its cause: IsPermanent(%v) = false", err)
		}
		st := c.Status()
		h.Add("Status().LastError", st.LastError)
		if !strings.Contains(st.LastError, "still active") {
			t.Errorf("LastError %q lost the service's message", st.LastError)
		}
		if tok := mustToken(t, c); !tok.Value.Equal(secret.New(held)) {
			t.Errorf("the held token is no longer served")
		}
	})
}
