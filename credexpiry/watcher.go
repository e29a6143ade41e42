package credexpiry

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
)

// Schedule constants of the contract and their bounds.
const (
	// LookupEvery is how often a Lookup asks the identity service.
	LookupEvery = 6 * time.Hour
	// lookupJitter spreads a fleet's lookups: each period is LookupEvery
	// give or take this fraction of it.
	lookupJitter = 0.10
	// retryBase is the first delay after a transient failure (5xx,
	// network, 429 without Retry-After); it doubles up to LookupEvery.
	retryBase = time.Minute
	// minRetryAfter is the least delay a Retry-After asks for that is
	// honoured as such; the most is LookupEvery.
	minRetryAfter = time.Minute
	// defaultLookupTimeout bounds one lookup.
	defaultLookupTimeout = 10 * time.Second
	// day is the unit of the warnings.
	day = 24 * time.Hour
	// movedMuch is how far the expiry must move for the change to be
	// logged at info rather than debug: a rotated credential, not the
	// seconds that separate two answers about the same one.
	movedMuch = day
)

// Where an expiry came from, as Status.Source says it.
const (
	// SourceConfig is CREDENTIAL_EXPIRES_AT.
	SourceConfig = "config"
	// SourceLookup is the identity service, asked by a Lookup (CSP's
	// api-tokens/details).
	SourceLookup = "lookup"
	// SourceExchange is an exchange's answer (refresh_expires_in).
	SourceExchange = "exchange"
)

// Lookup asks the identity service when the credential expires. The zero
// time with a nil error means the service says it does not expire.
// exchange.CSPAPIToken implements it.
type Lookup interface {
	CredentialExpiry(ctx context.Context) (time.Time, error)
}

// Options configures a Watcher. The zero value of each field means its
// default.
type Options struct {
	// Route and Kind name the route and its credential kind in logs.
	Route, Kind string
	// Configured is the expiry the operator configured; zero when none.
	Configured time.Time
	// Lookup, when set, is asked at start and about every LookupEvery.
	Lookup Lookup
	// LookupTimeout bounds one lookup. Default 10 s.
	LookupTimeout time.Duration
	// Logger receives the warnings. Default: no logging.
	Logger *zap.Logger
	// OnChange, when set, is called with the expiry (zero when unknown)
	// each time it changes, for the gauge, and by New with Configured
	// when it is set. It is called with the
	// Watcher's lock held, in the order of the changes, so it must be
	// quick and must not call back into the Watcher.
	OnChange func(time.Time)
	// Metrics, when set, holds the route's gauge, set as OnChange is
	// called. Nil records nothing.
	Metrics *Metrics
	// Rand returns a uniform float64 in [0, 1) for the lookup jitter.
	// Default math/rand/v2.Float64; tests pin it.
	Rand func() float64
}

// Status is what is known of a route's credential expiry.
type Status struct {
	// ExpiresAt is the earliest expiry known; zero when none is known.
	ExpiresAt time.Time
	// Source is where ExpiresAt came from: SourceConfig, SourceLookup
	// or SourceExchange; empty when ExpiresAt is zero.
	Source string
}

// Watcher tracks one route's credential expiry. Observe and Status may be
// called from any goroutine; Run must be called at most once.
type Watcher struct {
	opts Options
	log  *zap.Logger
	// kick wakes Run after Observe, to re-check the warnings.
	kick chan struct{}

	// mu guards the fields below. Nothing on a request's path takes it:
	// it is read by Status (for /readyz, the status page) and written by
	// Run and Observe.
	mu sync.Mutex
	// known is the expiry each source gave, absent when it gave none.
	known map[string]time.Time
	// current is the earliest of known, the one shown and warned about.
	current Status
	// exchanged is the last expiry an exchange reported and when, until
	// the next report tells whether it is a deadline (see Observe).
	exchanged, exchangedAt time.Time
	// warned is the warning level logged for current (see level), so
	// that each threshold is logged once.
	warned int
}

// New returns a Watcher. Nothing is looked up or logged until Run.
func New(opts Options) *Watcher {
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = defaultLookupTimeout
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	opts.OnChange = opts.Metrics.observe(opts.Route, opts.OnChange)
	w := &Watcher{
		opts:  opts,
		log:   log.With(zap.String("route", opts.Route), zap.String("kind", opts.Kind)),
		kick:  make(chan struct{}, 1),
		known: map[string]time.Time{},
	}
	if !opts.Configured.IsZero() {
		w.known[SourceConfig] = opts.Configured
		w.current = Status{ExpiresAt: opts.Configured, Source: SourceConfig}
		if opts.OnChange != nil {
			opts.OnChange(opts.Configured)
		}
	}
	return w
}

// Status reports what is known now.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Observe is told the expiry an exchange's answer gave (refresh_expires_in
// of a refresh); zero means the answer says the credential does not
// expire.
//
// Such an expiry is taken as the credential's only once a second answer
// shows it to be a deadline: many providers (Keycloak's default session
// idle timeout among them) answer a window that starts again at every
// refresh, which credproxy, refreshing far more often, never reaches.
// Warning about it would cry wolf for as long as the process runs. When
// the reported expiry moves later by about the time between the two
// answers, it is such a window and is not taken; when it stays put or
// moves earlier (the session's absolute limit, a refresh token's fixed
// lifetime), it is.
func (w *Watcher) Observe(at time.Time) {
	now := time.Now()
	w.mu.Lock()
	prev, prevAt := w.exchanged, w.exchangedAt
	w.exchanged, w.exchangedAt = at, now
	switch {
	case at.IsZero():
		w.setLocked(SourceExchange, time.Time{})
	case prev.IsZero():
		// The first report, or the first with an expiry: wait for the
		// next one to tell a deadline from a window.
	case at.Sub(prev) > max(2*time.Second, now.Sub(prevAt)/2):
		w.setLocked(SourceExchange, time.Time{}) // a sliding window
	default:
		w.setLocked(SourceExchange, at)
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// setLocked records what source says (zero: nothing) and recomputes the
// current expiry, telling OnChange and the log when it changed. w.mu must
// be held.
func (w *Watcher) setLocked(source string, at time.Time) {
	if at.IsZero() {
		delete(w.known, source)
	} else {
		w.known[source] = at
	}
	var next Status
	for _, s := range []string{SourceConfig, SourceLookup, SourceExchange} {
		if t, ok := w.known[s]; ok && (next.ExpiresAt.IsZero() || t.Before(next.ExpiresAt)) {
			next = Status{ExpiresAt: t, Source: s}
		}
	}
	prev := w.current
	if next.ExpiresAt.Equal(prev.ExpiresAt) && next.Source == prev.Source {
		return
	}
	w.current = next
	if w.opts.OnChange != nil {
		w.opts.OnChange(next.ExpiresAt)
	}
	logAt := w.log.Debug
	if prev.ExpiresAt.IsZero() != next.ExpiresAt.IsZero() || absDuration(next.ExpiresAt.Sub(prev.ExpiresAt)) >= movedMuch {
		logAt = w.log.Info
	}
	if next.ExpiresAt.IsZero() {
		logAt("credential expiry no longer known")
		return
	}
	logAt("credential expiry known", zap.Time("expires_at", next.ExpiresAt), zap.String("source", next.Source),
		zap.Duration("expires_in", time.Until(next.ExpiresAt).Round(time.Second)))
}

// Run looks the expiry up (when there is a Lookup) at once and about every
// LookupEvery, and logs each warning when its threshold is reached, until
// ctx ends. A failed lookup is logged at debug and retried later; it
// changes nothing else.
func (w *Watcher) Run(ctx context.Context) {
	var lookupAt time.Time
	if w.opts.Lookup != nil {
		lookupAt = time.Now()
	}
	failures := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		if !lookupAt.IsZero() && !now.Before(lookupAt) {
			var delay time.Duration
			delay, failures = w.lookup(ctx, failures)
			if ctx.Err() != nil {
				return
			}
			now = time.Now()
			lookupAt = now.Add(delay)
		}
		wake := w.checkWarnings(now)
		if !lookupAt.IsZero() && (wake.IsZero() || lookupAt.Before(wake)) {
			wake = lookupAt
		}
		var fire <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(wake.Sub(now))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-fire:
		case <-w.kick:
		}
	}
}

// lookup asks the identity service once and returns the delay until the
// next lookup and the count of consecutive failures.
func (w *Watcher) lookup(ctx context.Context, failures int) (time.Duration, int) {
	lctx, cancel := context.WithTimeout(ctx, w.opts.LookupTimeout)
	at, err := w.opts.Lookup.CredentialExpiry(lctx)
	cancel()
	if ctx.Err() != nil {
		return 0, failures
	}
	if err != nil {
		failures++
		delay := retryDelay(err, failures)
		w.log.Debug("credential expiry lookup failed; serving is not affected",
			zap.Error(err), zap.Int("consecutive_failures", failures), zap.Duration("retry_in", delay))
		return delay, failures
	}
	w.mu.Lock()
	w.setLocked(SourceLookup, at)
	w.mu.Unlock()
	if at.IsZero() {
		w.log.Debug("credential expiry looked up: the identity service gives none")
	} else {
		w.log.Debug("credential expiry looked up", zap.Time("expires_at", at))
	}
	jitter := (2*w.opts.Rand() - 1) * lookupJitter
	return time.Duration(float64(LookupEvery) * (1 + jitter)), 0
}

// retryDelay is the delay after the n-th consecutive failed lookup. A
// rejected request (404: unknown token or no such endpoint; other 4xx but
// 408, 425 and 429) will not change soon: the next lookup is the regular
// one. Otherwise the delay doubles from retryBase up to LookupEvery, and a
// Retry-After is honoured between minRetryAfter and LookupEvery.
func retryDelay(err error, n int) time.Duration {
	if exchange.IsPermanent(err) {
		return LookupEvery
	}
	d := LookupEvery
	if n < 10 { // 1 min << 9 = 8.5 h is past LookupEvery
		d = min(LookupEvery, retryBase<<(n-1))
	}
	var e *exchange.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		d = max(d, min(max(e.RetryAfter, minRetryAfter), LookupEvery))
	}
	return d
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
