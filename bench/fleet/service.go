package fleet

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// Service is the identity service the whole fleet exchanges with. Each
// sidecar instance (a sidecar restarted is a new instance) has a Source of
// its own from Register. An exchange takes latency, then succeeds with a
// token of the service's lifetime, or fails with a 503 while an outage is
// on. Every exchange that reaches the service is counted in the second it
// is answered.
//
// Service also keeps, per instance, what the fleet's prober needs to find
// the sidecars that may hold no usable token without asking all of them
// every second: whether its last exchange failed (or it has had none
// yet), whether it ever got a token, and when its last token expires.
type Service struct {
	life, latency  time.Duration
	start          time.Time
	outFrom, outTo time.Time

	// mu guards the fields below; Fetch takes it once per exchange.
	mu        sync.Mutex
	perSecond []int32
	failed    int64
	routes    []routeState
	// suspects are the instances whose last exchange failed or that have
	// had none: only they can be without a usable token.
	suspects map[int]struct{}
}

// routeState is what the service knows of one instance.
type routeState struct {
	everOK bool
	issued time.Time // when the last token was issued to it
	expiry time.Time // when that token expires
}

// NewService starts counting now. Its tokens live life; each exchange
// takes latency. outFrom and outTo bound an outage (every exchange
// answered in [outFrom, outTo) fails with 503); zero times mean none.
func NewService(life, latency time.Duration, outFrom, outTo time.Time) *Service {
	return &Service{life: life, latency: latency, start: time.Now(), outFrom: outFrom, outTo: outTo, suspects: map[int]struct{}{}}
}

// Register adds an instance and returns its id and its Source.
func (s *Service) Register() (int, exchange.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := len(s.routes)
	s.routes = append(s.routes, routeState{})
	s.suspects[id] = struct{}{}
	return id, source{s: s, id: id}
}

// Forget drops a stopped instance from the suspects.
func (s *Service) Forget(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.suspects, id)
}

// source is one instance's view of the service.
type source struct {
	s  *Service
	id int
}

var _ exchange.Source = source{}

// Fetch is one exchange: the latency, then the service's answer.
func (src source) Fetch(ctx context.Context) (exchange.Token, error) {
	t := time.NewTimer(src.s.latency)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return exchange.Token{}, ctx.Err()
	case <-t.C:
	}
	return src.s.answer(src.id)
}

// errOutage is the service's answer during an outage: transient, like
// any 5xx.
var errOutage = &exchange.Error{Op: "fleet exchange", Status: 503, Message: "identity service unavailable"}

func (s *Service) answer(id int) (exchange.Token, error) {
	now := time.Now()
	down := !s.outFrom.IsZero() && !now.Before(s.outFrom) && now.Before(s.outTo)
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := int(now.Sub(s.start) / time.Second)
	for len(s.perSecond) <= sec {
		s.perSecond = append(s.perSecond, 0)
	}
	s.perSecond[sec]++
	if down {
		s.failed++
		s.suspects[id] = struct{}{}
		return exchange.Token{}, errOutage
	}
	r := &s.routes[id]
	r.everOK, r.issued, r.expiry = true, now, now.Add(s.life)
	delete(s.suspects, id)
	return exchange.Token{Value: secret.New("fleet-" + strconv.Itoa(id) + "-" + strconv.FormatInt(now.UnixNano(), 36)), Expiry: r.expiry}, nil
}

// Suspects returns the instances that may hold no usable token.
func (s *Service) Suspects() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, 0, len(s.suspects))
	for id := range s.suspects {
		ids = append(ids, id)
	}
	return ids
}

// route returns what the service knows of instance id.
func (s *Service) route(id int) routeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routes[id]
}

// PerSecond returns the exchanges answered in each second since the
// start, up to end.
func (s *Service) PerSecond(end time.Time) []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int(end.Sub(s.start) / time.Second)
	out := make([]int32, n)
	copy(out, s.perSecond)
	return out
}

// Failed is the number of exchanges answered with the outage's 503.
func (s *Service) Failed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}
