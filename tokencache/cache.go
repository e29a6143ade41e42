package tokencache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// Lifecycle constants of the contract.
const (
	// MinGap is the least time between the starts of two exchanges.
	MinGap = time.Second
	// BackoffBase and BackoffMax bound the exponential backoff.
	BackoffBase = time.Second
	BackoffMax  = 60 * time.Second
	// HoldBase and HoldMax bound the back-off of 401-triggered renewals
	// once a renewed token is refused too (see Invalidate).
	HoldBase = time.Second
	HoldMax  = 5 * time.Minute
	// jitterFraction is the renewal jitter, as a fraction of the
	// lifetime, taken before RefreshAt only: a renewal never comes later
	// than RefreshAt, so the time left to ride out an outage (a third of
	// a 30-minute token's life at the default) holds for every sidecar
	// of a fleet, while their renewals still spread over a tenth of it.
	jitterFraction = 0.10
	// autoMarginMax and autoMarginFraction define the automatic expiry
	// margin: the smaller of 10 s and 10% of the lifetime.
	autoMarginMax      = 10 * time.Second
	autoMarginFraction = 0.10
	// releaseTimeout bounds ending a session when it is replaced or at
	// shutdown.
	releaseTimeout = 5 * time.Second
)

// Options configures a Cache. The zero value of each field means its
// default.
type Options struct {
	// Route and Kind name the route and its credential kind in logs,
	// metrics and errors.
	Route, Kind string
	// RefreshAt is the fraction of the lifetime after which a token is
	// renewed. Default 0.66.
	RefreshAt float64
	// ExpiryMargin is how long before its expiry a token stops being
	// served. Zero means the smaller of 10 s and 10% of the lifetime.
	ExpiryMargin time.Duration
	// TokenWait is how long Token waits when no valid token is held.
	// Default 5 s.
	TokenWait time.Duration
	// ExchangeTimeout bounds one exchange. Default 10 s.
	ExchangeTimeout time.Duration
	// RecheckEvery is how often a token without expiry (the static kind)
	// is fetched again, to pick up a rotated file. Default 5 min.
	RecheckEvery time.Duration
	// Logger receives one line per exchange. Default: no logging.
	Logger *zap.Logger
	// Metrics, when set, counts the route's exchanges, renewals and
	// held-back renewals (labelled Route and Kind), and New registers the
	// route's gauges on its registry: a second Cache with the same Route
	// on one Metrics panics there. Nil counts nothing.
	Metrics *Metrics
	// OnExchange, when set, is called by the loop after every exchange:
	// for metrics beyond Metrics, and for what the exchange learnt of the
	// credential (Exchange.Credential). It must not block.
	OnExchange func(Exchange)
	// OnToken, when set, is called by the loop with the new token after
	// every successful exchange, the first one included, once the token
	// is published (Token already returns it). It is how a token sink
	// learns of a renewal. It must not block: the loop exchanges nothing
	// while it runs, so slow work (file I/O) belongs on another goroutine.
	OnToken func(exchange.Token)
	// OnRenewalSuppressed, when set, is called for every 401-triggered
	// renewal held back (see Invalidate), for metrics. It must not block.
	OnRenewalSuppressed func()
	// Rand returns a uniform float64 in [0, 1) for jitter. Default
	// math/rand/v2.Float64; tests pin it.
	Rand func() float64
}

// Exchange describes one finished exchange, for OnExchange.
type Exchange struct {
	// Result is "ok" or a failure reason: "rejected" (the service refused
	// the credential), "invalid_response" (a 2xx answer that is not a
	// usable token), "unavailable" (5xx, 429, network), "timeout", or
	// "config" (the secret could not be read).
	Result string
	// Duration is how long the exchange took.
	Duration time.Duration
	// Lifetime is the new token's lifetime, zero when it has no expiry or
	// the exchange failed.
	Lifetime time.Duration
	// Trigger says why the exchange ran: "initial" (no token held yet),
	// "scheduled" (renewal ahead of expiry, or its retry),
	// "upstream_401" (the upstream rejected the held token) or "reload"
	// (Renew asked for it: credproxy's SIGHUP).
	Trigger string
	// Credential is what the exchange learnt of the long-lived credential
	// (exchange.Token.Credential): a rotated refresh token, its expiry.
	// It is reported even when the token was refused (expired on
	// arrival), as the credential changed all the same; nil when the
	// exchange learnt nothing.
	Credential *exchange.CredentialNews
}

// Renewal is the exchange that answered a Renew: as OnExchange saw it,
// and the token it obtained (zero when it failed).
type Renewal struct {
	Exchange
	Token exchange.Token
}

// ErrStopped is Renew's error once Run has ended.
var ErrStopped = errors.New("token cache stopped")

// renewAnswer is the loop's answer to one Renew.
type renewAnswer struct {
	r   Renewal
	err error
}

// Cache holds one route's token. Token, Invalidate, Renew and Status may
// be called from any number of goroutines; Run must be called exactly
// once.
type Cache struct {
	src  exchange.Source
	opts Options
	log  *zap.Logger

	// cur is the published token; only the Run loop stores to it.
	cur atomic.Pointer[state]
	// prev is the state cur replaced: its token may still be valid
	// (a renewal does not revoke it), so it is redacted from errors too.
	prev atomic.Pointer[state]
	// kick wakes the loop after an Invalidate; one pending kick suffices.
	kick chan struct{}
	// renew wakes the loop after a Renew; one pending wake-up suffices,
	// since the loop reads who is waiting from renewers.
	renew chan struct{}

	// mu guards the fields below, which are read by waiters and Status,
	// never on the hot path.
	mu sync.Mutex
	// changed is closed and replaced whenever an exchange finishes, to
	// wake waiters.
	changed chan struct{}
	// attempts counts finished exchanges, so a waiter can tell that an
	// exchange it waited for has failed.
	attempts    uint64
	inFlight    bool
	failures    int
	lastAttempt time.Time
	// lastSuccess is when the last exchange that obtained a token started.
	lastSuccess time.Time
	lastErr     error
	// lastReason is lastErr as a client may read it (clientReason).
	lastReason   string
	nextAttempt  time.Time
	shuttingDown bool
	// renewers are the Renew calls waiting for the next exchange to
	// finish; finishLocked answers them all.
	renewers []chan<- renewAnswer
	// holdUntil is when 401-triggered renewals may start again while
	// refusals is not 0.
	holdUntil time.Time

	// refusals counts, in a row, the tokens from 401-triggered renewals
	// that an upstream refused before any request succeeded with them: a
	// path (or a hostile upstream) that answers 401 whatever the token.
	// 0 means no back-off. Written under mu; read without it by
	// Succeeded, on the hot path.
	refusals atomic.Int32
}

// state is one published token with its schedule. It is immutable once
// stored, except for the invalidated flag.
type state struct {
	tok      exchange.Token
	obtained time.Time
	// usableUntil is Expiry minus the margin; zero means no expiry.
	usableUntil time.Time
	refreshAt   time.Time
	// invalidated is set once an upstream rejected this token.
	invalidated atomic.Bool
	// by401 is set when an upstream's 401 triggered the exchange that
	// obtained this token.
	by401 bool
	// accepted is set once a request succeeded while this token was
	// current (Succeeded).
	accepted atomic.Bool
	// refused is set, under Cache.mu, once this token counted in
	// Cache.refusals.
	refused bool
	// fresh is true while usableUntil is more than preciseWindow away, so
	// the hot path can skip reading the clock. A timer clears it; if the
	// timer runs late, the clock is still read in the last preciseWindow
	// and the expiry margin remains between usableUntil and Expiry.
	fresh atomic.Bool
	timer *time.Timer
}

// preciseWindow is how long before usableUntil the hot path starts to read
// the clock on every call.
const preciseWindow = time.Second

func (s *state) usable(now time.Time) bool {
	return s.usableUntil.IsZero() || now.Before(s.usableUntil)
}

// usableNow is usable for the hot path: one atomic load while the token is
// fresh. Otherwise time.Until on a time that carries a monotonic reading
// reads only the monotonic clock, half the cost of time.Now, and is immune
// to wall-clock steps.
func (s *state) usableNow() bool {
	return s.fresh.Load() || s.usableUntil.IsZero() || time.Until(s.usableUntil) > 0
}

// publish makes s the current token and arms the timer that ends its
// fresh period. Only the Run loop calls it.
func (c *Cache) publish(s *state) {
	if s.usableUntil.IsZero() {
		s.fresh.Store(true)
	} else if d := time.Until(s.usableUntil) - preciseWindow; d > 0 {
		s.fresh.Store(true)
		s.timer = time.AfterFunc(d, func() { s.fresh.Store(false) })
	}
	if old := c.cur.Swap(s); old != nil {
		if old.timer != nil {
			old.timer.Stop()
		}
		c.prev.Store(old)
	}
}

// New returns a Cache around src. Nothing happens until Run.
func New(src exchange.Source, opts Options) *Cache {
	if opts.RefreshAt <= 0 || opts.RefreshAt >= 1 {
		opts.RefreshAt = 0.66
	}
	if opts.TokenWait <= 0 {
		opts.TokenWait = 5 * time.Second
	}
	if opts.ExchangeTimeout <= 0 {
		opts.ExchangeTimeout = 10 * time.Second
	}
	if opts.RecheckEvery <= 0 {
		opts.RecheckEvery = 5 * time.Minute
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	// The metrics wrap the caller's hooks, so that the loop calls one of
	// each.
	opts.OnExchange = opts.Metrics.observeExchange(opts.Route, opts.Kind, opts.OnExchange)
	opts.OnRenewalSuppressed = opts.Metrics.renewalSuppressed(opts.Route, opts.OnRenewalSuppressed)
	c := &Cache{
		src:     src,
		opts:    opts,
		log:     log.With(zap.String("route", opts.Route), zap.String("kind", opts.Kind)),
		kick:    make(chan struct{}, 1),
		renew:   make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
	opts.Metrics.watch(opts.Route, c.Status)
	return c
}

// Token returns a token that is valid now and stays valid for at least the
// expiry margin. With such a token held this is a lock-free atomic load.
// Otherwise it waits, up to TokenWait, for the exchange in flight or the
// next one; if that fails or time runs out it returns *UnavailableError
// (or ctx's error): the caller must fail closed.
func (c *Cache) Token(ctx context.Context) (exchange.Token, error) {
	if s := c.cur.Load(); s != nil && s.usableNow() {
		return s.tok, nil
	}
	return c.wait(ctx, secret.Secret{})
}

// ServedUntil returns when the cache stops serving tok: its expiry minus
// the expiry margin; the zero time for a token without expiry (static).
// ok is false when tok is not the token held now (a renewal replaced it
// since it was read): then the caller knows only tok.Expiry. It is for
// callers that hand a token on with a lifetime (the local OAuth 2.0
// token endpoint), so that their clients stop using it when credproxy
// does.
func (c *Cache) ServedUntil(tok exchange.Token) (until time.Time, ok bool) {
	s := c.cur.Load()
	if s == nil || !s.tok.Value.Equal(tok.Value) || !s.tok.Expiry.Equal(tok.Expiry) {
		return time.Time{}, false
	}
	return s.usableUntil, true
}

// Invalidate reports that an upstream answered 401 to rejected. If
// rejected is still the current token, one renewal is started (however
// many requests report the same token); then Invalidate waits, up to
// TokenWait, for a valid token other than rejected and returns it. The old
// token keeps being served to other requests meanwhile: a spurious 401
// must not take the route down when the identity service is out.
//
// When a token that a 401-triggered renewal obtained is refused too
// before any request succeeded with it, the 401s come from a path that
// refuses every token (or a hostile upstream), not from the token:
// later 401-triggered renewals of the route are held back, for 1 s
// doubling to 5 min with each such token, until a request succeeds
// (Succeeded). While held back, Invalidate returns rejected itself at
// once, without an exchange: the caller passes the 401 on. Requests that
// succeed keep getting the token.
func (c *Cache) Invalidate(ctx context.Context, rejected exchange.Token) (exchange.Token, error) {
	if s := c.cur.Load(); s != nil && s.tok.Value.Equal(rejected.Value) && !s.invalidated.Load() {
		if c.holdRenewal(s) {
			if c.opts.OnRenewalSuppressed != nil {
				c.opts.OnRenewalSuppressed()
			}
			return s.tok, nil
		}
		if s.invalidated.CompareAndSwap(false, true) {
			select {
			case c.kick <- struct{}{}:
			default: // a kick is already pending
			}
		}
	}
	return c.wait(ctx, rejected.Value)
}

// holdRenewal reports whether a 401-triggered renewal of s, the current
// token, is held back now, counting s first if it came from such a
// renewal and no request succeeded with it.
func (c *Cache) holdRenewal(s *state) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if s.by401 && !s.refused && !s.accepted.Load() {
		s.refused = true
		n := c.refusals.Add(1)
		hold := HoldMax
		if n <= 10 { // 1 s << 9 = 512 s is past the ceiling
			hold = min(HoldMax, HoldBase<<(n-1))
		}
		c.holdUntil = now.Add(hold)
		c.log.Warn("the upstream refused a token just renewed for a 401 too: a path that refuses every token; 401-triggered renewals held back",
			zap.Stringer("token", s.tok.Value), zap.Int32("refused_in_a_row", n), zap.Duration("held_for", hold))
	}
	return c.refusals.Load() > 0 && now.Before(c.holdUntil)
}

// Succeeded reports that an upstream answered a request that carried the
// route's token with something other than 401. It ends a back-off of
// 401-triggered renewals (see Invalidate) and marks the current token as
// accepted. It is on the hot path of every request: with nothing to
// change it is two atomic loads, without a lock or an allocation.
func (c *Cache) Succeeded() {
	if s := c.cur.Load(); s != nil && !s.accepted.Load() {
		s.accepted.Store(true)
	}
	if c.refusals.Load() == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refusals.Load() > 0 {
		c.log.Info("a request succeeded; 401-triggered renewals no longer held back")
	}
	c.refusals.Store(0)
	c.holdUntil = time.Time{}
}

// wait blocks until a usable token other than reject is published, an
// exchange finishes without producing one, TokenWait passes, or ctx ends.
func (c *Cache) wait(ctx context.Context, reject secret.Secret) (exchange.Token, error) {
	deadline := time.Now().Add(c.opts.TokenWait)
	timer := time.NewTimer(c.opts.TokenWait)
	defer timer.Stop()
	c.mu.Lock()
	start := c.attempts
	c.mu.Unlock()
	for {
		c.mu.Lock()
		changed, attempts := c.changed, c.attempts
		// In backoff after a failure, with no exchange in flight and none
		// due before the deadline (a kick does not shorten a backoff):
		// waiting cannot help, so fail at once rather than hold the request.
		hopeless := !c.inFlight && c.failures > 0 && c.nextAttempt.After(deadline)
		c.mu.Unlock()
		// Load after taking changed: a publish between the two is seen
		// either here or by the close of changed.
		if s := c.cur.Load(); s != nil && s.usable(time.Now()) && (reject.Empty() || !s.tok.Value.Equal(reject)) {
			return s.tok, nil
		}
		if attempts != start || hopeless {
			return exchange.Token{}, c.unavailable()
		}
		select {
		case <-changed:
		case <-timer.C:
			return exchange.Token{}, c.unavailable()
		case <-ctx.Done():
			return exchange.Token{}, ctx.Err()
		}
	}
}

// UnavailableError is returned when no valid token can be had: the request
// must not be forwarded. It is the cache's exchange.Unavailable, which is
// all its consumers need look for.
type UnavailableError struct {
	Route string
	// Detail says why in credproxy's own words, for the client: the last
	// exchange's failure as its reason, the identity service's HTTP status
	// and registered OAuth 2.0 error code (see clientReason), or that the
	// first exchange has not finished. Error returns it too.
	Detail string
	// Cause is the last exchange's error, nil when none failed. It holds
	// the service's message, scrubbed of the credentials in every
	// encoding the redactor knows, and is for the log only: that text
	// may echo a secret in an encoding no redactor knows, so it never
	// goes to a client.
	Cause error
}

var _ exchange.Unavailable = (*UnavailableError)(nil)

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("route %s: no valid credential: %s", e.Route, e.Detail)
}

// ClientDetail returns Detail (exchange.Unavailable).
func (e *UnavailableError) ClientDetail() string { return e.Detail }

// LogCause returns Cause (exchange.Unavailable).
func (e *UnavailableError) LogCause() error { return e.Cause }

func (c *Cache) unavailable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var detail string
	switch {
	case c.shuttingDown:
		detail = "shutting down"
	case c.lastErr != nil:
		detail = c.lastReason
		if !c.nextAttempt.IsZero() {
			detail += fmt.Sprintf("; next attempt in %s", time.Until(c.nextAttempt).Round(time.Second))
		}
	case c.attempts == 0:
		detail = "the first exchange has not finished"
	default:
		detail = "the token was rejected upstream and no other token could be obtained"
	}
	return &UnavailableError{Route: c.opts.Route, Detail: detail, Cause: c.lastErr}
}

// Run exchanges and renews until ctx ends, then releases the current
// token if the source supports it (ending a session). It returns once the
// release is done.
func (c *Cache) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		reload := false
		select {
		case <-ctx.Done():
			c.stop()
			return
		case <-c.kick:
			if !c.renewNeeded() {
				continue
			}
		case <-c.renew:
			// No one waiting: an exchange that finished since the
			// wake-up was sent has answered them.
			if !c.renewWanted() {
				continue
			}
			reload = true
		case <-timer.C:
		}
		// Two exchanges never start less than MinGap apart, whatever
		// asked for the second one.
		c.mu.Lock()
		gap := MinGap - time.Since(c.lastAttempt)
		c.mu.Unlock()
		if gap > 0 {
			select {
			case <-ctx.Done():
				c.stop()
				return
			case <-time.After(gap):
			}
		}
		timer.Reset(c.exchange(ctx, reload))
	}
}

// Renew asks for an exchange now and returns the one that answers it:
// its result, and the new token when it succeeded (or that exchange's
// error). It is how credproxy's SIGHUP renews every route.
//
// Concurrency: Renew may be called from any goroutine, any number of
// times, before Run starts or while it runs. The Run loop serves the
// calls, so deduplication is structural: a call made while an exchange
// is in flight is answered by that exchange, and calls made while none
// is are answered by the next one, which the first of them asks the loop
// to start. However many calls arrive together, they cost one exchange.
// That exchange still starts no less than MinGap after the previous
// one, but it does not wait out a backoff: a renewal is an operator's
// request, and MinGap bounds what a loop of them can cost.
//
// Renew blocks until that exchange finishes, ctx ends (the exchange goes
// on; only the wait is abandoned) or the cache stops (ErrStopped).
func (c *Cache) Renew(ctx context.Context) (Renewal, error) {
	reply := make(chan renewAnswer, 1)
	c.mu.Lock()
	if c.shuttingDown {
		c.mu.Unlock()
		return Renewal{}, ErrStopped
	}
	c.renewers = append(c.renewers, reply)
	inFlight := c.inFlight
	c.mu.Unlock()
	// With an exchange in flight, its end answers reply (inFlight and
	// renewers change together, under mu). Otherwise wake the loop.
	if !inFlight {
		select {
		case c.renew <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	select {
	case a := <-reply:
		return a.r, a.err
	case <-ctx.Done():
		return Renewal{}, ctx.Err()
	}
}

// renewWanted reports whether a Renew is waiting for an exchange.
func (c *Cache) renewWanted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.renewers) > 0
}

// renewNeeded reports whether a kick should start an exchange now: the
// current token was invalidated and no backoff is pending (a kick must not
// shorten a backoff, or a 401 storm would hammer a failing service).
func (c *Cache) renewNeeded() bool {
	s := c.cur.Load()
	if s == nil || !s.invalidated.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures == 0
}

// trigger says why the exchange about to start runs; reload is set when
// a Renew asked for it.
func (c *Cache) trigger(reload bool) string {
	held := c.cur.Load()
	switch {
	case reload:
		return "reload"
	case held == nil:
		return "initial"
	case held.invalidated.Load():
		return "upstream_401"
	}
	return "scheduled"
}

// exchange does one exchange, publishes its result and returns the delay
// until the next one. reload is set when a Renew asked for it.
func (c *Cache) exchange(ctx context.Context, reload bool) time.Duration {
	start := time.Now()
	trigger := c.trigger(reload)
	c.mu.Lock()
	c.lastAttempt, c.inFlight = start, true
	c.mu.Unlock()

	fctx, cancel := context.WithTimeout(ctx, c.opts.ExchangeTimeout)
	tok, err := c.src.Fetch(fctx)
	timedOut := errors.Is(fctx.Err(), context.DeadlineExceeded)
	cancel()
	took := time.Since(start)
	// What the exchange learnt of the credential is reported with it,
	// whatever becomes of the token; the tokens served carry none.
	news := tok.Credential
	tok.Credential = nil
	if err == nil && !tok.Expiry.IsZero() && !tok.Expiry.After(start) {
		err = errExpiredOnArrival
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0 // shutting down; Run sees ctx
		}
		return c.failed(err, timedOut, Exchange{Duration: took, Trigger: trigger, Credential: news})
	}

	lifetime := time.Duration(0)
	if !tok.Expiry.IsZero() {
		lifetime = tok.Expiry.Sub(start)
	}
	done := Exchange{Result: "ok", Duration: took, Lifetime: lifetime, Trigger: trigger, Credential: news}
	old := c.cur.Load()
	s := c.schedule(tok, start)
	s.by401 = trigger == "upstream_401"
	c.publish(s)
	c.mu.Lock()
	c.failures, c.lastErr, c.nextAttempt, c.lastSuccess = 0, nil, s.refreshAt, start
	c.finishLocked(Renewal{Exchange: done, Token: tok}, nil)
	c.mu.Unlock()

	expiresIn := zap.Duration("expires_in", lifetime)
	if lifetime == 0 {
		expiresIn = zap.String("expires_in", "never")
	}
	c.log.Info("token obtained",
		zap.String("result", "ok"),
		zap.String("trigger", trigger),
		expiresIn,
		zap.Duration("renew_in", time.Until(s.refreshAt)),
		zap.Duration("duration", took),
		zap.Stringer("token", tok.Value),
	)
	if c.opts.OnToken != nil {
		c.opts.OnToken(tok)
	}
	c.observe(done)
	if old != nil && !old.tok.Value.Equal(tok.Value) {
		c.release(ctx, old.tok)
	}
	return time.Until(s.refreshAt)
}

// schedule computes when tok, obtained when the exchange started, stops
// being served and when it is renewed.
func (c *Cache) schedule(tok exchange.Token, obtained time.Time) *state {
	s := &state{tok: tok, obtained: obtained}
	if tok.Expiry.IsZero() {
		s.refreshAt = obtained.Add(c.opts.RecheckEvery)
		return s
	}
	life := tok.Expiry.Sub(obtained)
	margin := c.opts.ExpiryMargin
	if margin <= 0 {
		margin = min(autoMarginMax, time.Duration(float64(life)*autoMarginFraction))
	}
	// A margin configured larger than the token lives would make it
	// unusable from the start; keep at least half of the lifetime.
	margin = min(margin, life/2)
	s.usableUntil = tok.Expiry.Add(-margin)

	jitter := c.opts.Rand() * jitterFraction
	at := time.Duration(float64(life) * (c.opts.RefreshAt - jitter))
	// Renew while at least a tenth of the usable time is left, so the
	// exchange finishes before the old token stops being served.
	usable := s.usableUntil.Sub(obtained)
	at = min(at, usable-usable/10)
	s.refreshAt = obtained.Add(max(at, MinGap))
	return s
}

// failed records a failed exchange, done without its Result, and returns
// the backoff delay.
func (c *Cache) failed(err error, timedOut bool, done Exchange) time.Duration {
	result := classify(err, timedOut)
	done.Result = result
	took, trigger := done.Duration, done.Trigger
	retryAfter := exchange.RetryAfter(err)
	held := c.cur.Load()
	// The service may quote the token held and still served, or the one
	// before it (still valid after a renewal): the exchange's redactor
	// knows only what it sent and received.
	var issued []secret.Secret
	for _, s := range []*state{held, c.prev.Load()} {
		if s != nil && !s.tok.Value.Empty() {
			issued = append(issued, s.tok.Value)
		}
	}
	if len(issued) > 0 {
		err = secret.RedactError(err, issued...)
	}
	c.mu.Lock()
	c.failures++
	n := c.failures
	delay := c.backoff(n, result == "rejected", retryAfter)
	wanted := delay
	if held != nil && !held.usableUntil.IsZero() {
		delay = capRetry(delay, time.Until(held.usableUntil))
	}
	c.lastErr, c.lastReason, c.nextAttempt = err, clientReason(err, result), time.Now().Add(delay)
	c.finishLocked(Renewal{Exchange: done}, err)
	c.mu.Unlock()

	fields := []zap.Field{
		zap.String("result", result),
		zap.String("trigger", trigger),
		zap.Error(err),
		zap.Int("consecutive_failures", n),
		zap.Duration("retry_in", delay),
		zap.Duration("duration", took),
	}
	if retryAfter > 0 {
		fields = append(fields, zap.Duration("retry_after", retryAfter))
	}
	if held != nil && !held.usableUntil.IsZero() {
		fields = append(fields, zap.Duration("old_token_usable_for", max(0, time.Until(held.usableUntil))))
	}
	if result == "rejected" {
		c.log.Error("exchange rejected: the credential is not accepted", fields...)
	} else {
		c.log.Warn("exchange failed", fields...)
	}
	if delay < wanted && delay < retryAfter {
		c.log.Warn("the service's Retry-After is longer than the held token stays usable; retrying sooner",
			zap.Duration("retry_after", retryAfter), zap.Duration("retry_in", delay),
			zap.Duration("old_token_usable_for", max(0, time.Until(held.usableUntil))))
	}
	c.observe(done)
	return delay
}

// capRetry shortens delay, the wait before retrying a failed renewal,
// while the held token is usable for left: the retry comes no later than
// halfway through left. A Retry-After (or a backoff) longer than the
// token lasts would otherwise let a token that could still be renewed
// expire: with 8 s tokens, one 429 asking for an hour failed 24 of 60
// requests although the service answered again a second later. Halving
// rather than retrying once just before the end leaves room for the
// retry itself to take time or fail, and costs a service that keeps
// refusing about log2(left / MinGap) attempts (a dozen for a 30-minute
// token), not one a second. Once no usable token is held, nothing is
// capped: the service's Retry-After is honoured as it asks.
func capRetry(delay, left time.Duration) time.Duration {
	if left <= 0 {
		return delay
	}
	return min(delay, left/2)
}

// backoff is the delay after the n-th consecutive failure: full jitter
// over an exponential ceiling (1 s doubling to 60 s). A rejected
// credential waits between half the maximum and the maximum: fixing it
// takes a human, but a fleet must still not retry in step. A service's
// Retry-After is a floor; capRetry then bounds the result by the held
// token's usable time.
func (c *Cache) backoff(n int, rejected bool, retryAfter time.Duration) time.Duration {
	var d time.Duration
	if rejected {
		d = BackoffMax/2 + time.Duration(c.opts.Rand()*float64(BackoffMax/2))
	} else {
		ceiling := BackoffMax
		if n < 7 { // 1 s << 6 = 64 s is past the ceiling
			ceiling = min(BackoffMax, BackoffBase<<(n-1))
		}
		d = time.Duration(c.opts.Rand() * float64(ceiling))
	}
	return max(d, retryAfter)
}

// errExpiredOnArrival is an exchange's error when the service issued a
// token that had expired by the time the exchange started.
var errExpiredOnArrival = errors.New("the service issued a token that is already expired")

// clientReason says why an exchange failed in credproxy's own words, for
// the clients of the proxy and the token APIs: the failure's result, and
// for an answer from the identity service its HTTP status and registered
// OAuth 2.0 error code. The service's free text is left out: it may echo
// the secret in an encoding no redactor knows. The log, /readyz and
// `credproxy check` show it, scrubbed.
func clientReason(err error, result string) string {
	const prefix = "token exchange failed: "
	var e *exchange.Error
	switch {
	case errors.As(err, &e):
		s := fmt.Sprintf("%sidentity service answered %d", prefix, e.Status)
		if code := e.OAuthCode(); code != "" {
			s += " (" + code + ")"
		}
		if result == "invalid_response" {
			s += " without a usable token"
		}
		return s
	case result == "timeout":
		return prefix + "the identity service did not answer in time"
	case result == "config":
		return prefix + "the credential could not be read (see credproxy's log)"
	case errors.Is(err, errExpiredOnArrival):
		return prefix + errExpiredOnArrival.Error()
	}
	return prefix + "no usable answer from the identity service (see credproxy's log)"
}

func classify(err error, timedOut bool) string {
	var e *exchange.Error
	switch {
	case timedOut:
		return "timeout"
	case errors.As(err, &e) && e.Permanent():
		return "rejected"
	case errors.As(err, &e) && e.Status >= 200 && e.Status < 300:
		return "invalid_response"
	case errors.As(err, &e):
		return "unavailable"
	case errors.Is(err, secret.ErrEmpty), errors.As(err, new(*fs.PathError)):
		return "config"
	}
	return "unavailable"
}

// finishLocked wakes waiters after an exchange, and answers the Renew
// calls waiting for it with r and err. c.mu must be held.
func (c *Cache) finishLocked(r Renewal, err error) {
	c.attempts++
	c.inFlight = false
	close(c.changed)
	c.changed = make(chan struct{})
	for _, w := range c.renewers {
		w <- renewAnswer{r: r, err: err} // buffered for this one answer
	}
	c.renewers = nil
}

func (c *Cache) observe(e Exchange) {
	if c.opts.OnExchange != nil {
		c.opts.OnExchange(e)
	}
}

// stop wakes waiters with "shutting down" and releases the current token.
func (c *Cache) stop() {
	c.mu.Lock()
	c.shuttingDown = true
	c.finishLocked(Renewal{}, ErrStopped)
	c.mu.Unlock()
	if s := c.cur.Load(); s != nil {
		// Requests still draining read the clock from now on.
		s.fresh.Store(false)
		if s.timer != nil {
			s.timer.Stop()
		}
		c.release(context.Background(), s.tok)
	}
}

// release ends a replaced or final session when the source supports it.
func (c *Cache) release(ctx context.Context, tok exchange.Token) {
	r, ok := c.src.(exchange.Releaser)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := r.Release(ctx, tok); err != nil {
		c.log.Warn("could not end session", zap.Stringer("token", tok.Value), zap.Error(err))
		return
	}
	c.log.Info("session ended", zap.Stringer("token", tok.Value))
}

// State is a route's state, the same in /readyz, /status.json, the status
// page and the credproxy_route_state metric (docs/design.md, "Token
// lifecycle"). It is decided from two facts, whether a usable
// token is held and whether the last finished exchange failed, so that
// it says what is happening now:
//
//	                     last exchange succeeded   last exchange failed
//	usable token held    valid                     renewing
//	no usable token      expired                   failing
//
// and, before that table applies, pending (no exchange has finished yet)
// and stopped (Run has ended).
type State string

const (
	// StatePending: no exchange has finished yet; the first may be under
	// way. A route whose first exchange failed is failing, not pending.
	StatePending State = "pending"
	// StateValid: a usable token is held and the last exchange succeeded.
	StateValid State = "valid"
	// StateRenewing: a usable token is held and served, but the last
	// exchange (a renewal or its retry) failed. Ready all the same.
	StateRenewing State = "renewing"
	// StateFailing: no usable token is held and the last exchange failed:
	// the identity service or the credential is the trouble, now. This is
	// a route starting up whose first exchange failed (a rejected
	// credential) as well as one whose token ran out during an outage.
	StateFailing State = "failing"
	// StateExpired: the token held ran out (it is past its expiry margin)
	// and no exchange has failed since it was obtained: the exchange
	// replacing it is still under way or overdue (an identity service that
	// hangs until the exchange timeout, a machine that slept past the
	// renewal). Once that exchange fails the route is failing; once it
	// succeeds, valid.
	StateExpired State = "expired"
	// StateStopped: Run has ended (credproxy is shutting down); the token
	// was released and is no longer served.
	StateStopped State = "stopped"
)

// States returns every State, in the order of a route's life.
func States() []State {
	return []State{StatePending, StateValid, StateRenewing, StateFailing, StateExpired, StateStopped}
}

// Ready reports whether a route in state s holds a token it serves.
func (s State) Ready() bool { return s == StateValid || s == StateRenewing }

// Status is a route's state for /readyz, metrics and the status page. It
// holds no secret.
type Status struct {
	Route string `json:"route"`
	Kind  string `json:"kind"`
	// State is the route's State.
	State State `json:"state"`
	// Ready is true when a valid token is held: State valid or renewing.
	Ready bool `json:"ready"`
	// ExpiresAt is the held token's expiry; zero when none or none set.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// ExpiresIn is the time left until ExpiresAt, in seconds.
	ExpiresIn float64 `json:"expires_in,omitempty"`
	// NextExchange is when the next renewal or retry is due.
	NextExchange time.Time `json:"next_exchange,omitzero"`
	// LastAttempt is when the last exchange started, whatever its
	// outcome (one may be under way); zero before the first.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// LastSuccess is when the last exchange that obtained a token
	// started; zero when none did.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the last exchange's error, scrubbed of secrets; empty
	// once an exchange succeeded.
	LastError           string `json:"last_error,omitempty"`
	ConsecutiveFailures int    `json:"consecutive_failures,omitempty"`
}

// Status reports the cache's state now.
func (c *Cache) Status() Status {
	now := time.Now()
	st := Status{Route: c.opts.Route, Kind: c.opts.Kind}
	s := c.cur.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	st.LastAttempt, st.LastSuccess = c.lastAttempt, c.lastSuccess
	st.NextExchange, st.ConsecutiveFailures = c.nextAttempt, c.failures
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	if s != nil && !s.tok.Expiry.IsZero() {
		st.ExpiresAt = s.tok.Expiry
		st.ExpiresIn = s.tok.Expiry.Sub(now).Seconds()
	}
	usable, failed := s != nil && s.usable(now), c.failures > 0
	switch {
	case c.shuttingDown:
		st.State = StateStopped
	case s == nil && !failed:
		st.State = StatePending
	case usable && failed:
		st.State = StateRenewing
	case usable:
		st.State = StateValid
	case failed:
		st.State = StateFailing
	default:
		st.State = StateExpired
	}
	st.Ready = st.State.Ready()
	return st
}
