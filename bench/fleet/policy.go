package fleet

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/tokencache"
)

// Policy is a way for a sidecar to keep its token: credproxy's
// tokencache, or wavefront-proxy's renewal.
type Policy interface {
	// Name is the policy's name in the figures.
	Name() string
	// Period is the mean time between two renewals of a token of life:
	// a steady-state fleet starts its sidecars spread over one period.
	Period(life time.Duration) time.Duration
	// Start runs one sidecar over src until ctx ends. rnd is its own
	// jitter source, called from the sidecar's loop only.
	Start(ctx context.Context, src exchange.Source, route string, rnd func() float64) Sidecar
}

// Sidecar is one running sidecar.
type Sidecar interface {
	// Usable reports whether the sidecar holds a token it would send
	// now. It never waits.
	Usable() bool
	// Wait returns once the sidecar's loop has ended after its context.
	Wait()
}

// Credproxy is credproxy's policy: the real tokencache.Cache with its
// defaults (renew between 0.56 and 0.66 of the lifetime, backoff 1 s
// doubling to 60 s with full jitter, the old token served until 10 s
// before expiry).
type Credproxy struct{}

var _ Policy = Credproxy{}

func (Credproxy) Name() string { return "credproxy" }

// Period is 0.61 of the lifetime, the centre of the jitter.
func (Credproxy) Period(life time.Duration) time.Duration {
	return time.Duration(0.61 * float64(life))
}

func (Credproxy) Start(ctx context.Context, src exchange.Source, route string, rnd func() float64) Sidecar {
	c := tokencache.New(src, tokencache.Options{Route: route, Kind: "csp-api-token", Rand: rnd})
	probe, cancel := context.WithCancel(context.Background())
	cancel()
	s := &cacheSidecar{c: c, probe: probe, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		c.Run(ctx)
	}()
	return s
}

// cacheSidecar is a tokencache.Cache and its Run loop.
type cacheSidecar struct {
	c *tokencache.Cache
	// probe is an ended context: Token with it answers from what the
	// cache holds and never waits for an exchange.
	probe context.Context
	done  chan struct{}
}

// Usable asks the cache's hot path, as a proxied request would.
func (s *cacheSidecar) Usable() bool {
	_, err := s.c.Token(s.probe)
	return err == nil
}

func (s *cacheSidecar) Wait() { <-s.done }

// Wavefront is wavefront-proxy's policy (docs/protocols.md 1d), simulated:
// renew at expires_in - 180 s (- 30 s when expires_in < 600 s), no
// jitter; after a failure retry in a fixed 10 s, forever; the token is
// used until it expires.
type Wavefront struct{}

var _ Policy = Wavefront{}

func (Wavefront) Name() string { return "wavefront-proxy" }

func (Wavefront) Period(life time.Duration) time.Duration { return wavefrontRenewIn(life) }

// wavefrontRenewIn is how long after receiving a token of expiresIn
// wavefront-proxy renews it.
func wavefrontRenewIn(expiresIn time.Duration) time.Duration {
	if expiresIn < 600*time.Second {
		return expiresIn - 30*time.Second
	}
	return expiresIn - 180*time.Second
}

// wavefrontRetry is wavefront-proxy's fixed delay after a failure.
const wavefrontRetry = 10 * time.Second

func (Wavefront) Start(ctx context.Context, src exchange.Source, _ string, _ func() float64) Sidecar {
	s := &wavefrontSidecar{done: make(chan struct{})}
	go s.run(ctx, src)
	return s
}

// wavefrontSidecar is one simulated wavefront-proxy.
type wavefrontSidecar struct {
	// expiry is the held token's expiry in Unix nanoseconds; zero for
	// none.
	expiry atomic.Int64
	done   chan struct{}
}

func (s *wavefrontSidecar) run(ctx context.Context, src exchange.Source) {
	defer close(s.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait := wavefrontRetry
		if tok, err := src.Fetch(ctx); err == nil {
			s.expiry.Store(tok.Expiry.UnixNano())
			wait = wavefrontRenewIn(time.Until(tok.Expiry))
		}
		t.Reset(wait)
	}
}

func (s *wavefrontSidecar) Usable() bool { return time.Now().UnixNano() < s.expiry.Load() }

func (s *wavefrontSidecar) Wait() { <-s.done }
