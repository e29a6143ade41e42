package fleet

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Scenario is one fleet run.
type Scenario struct {
	// Name identifies the scenario in the figures.
	Name string
	// Routes is the number of sidecars, one route each.
	Routes int
	// Life is the lifetime of the service's tokens; Latency the time
	// each exchange takes.
	Life, Latency time.Duration
	// Duration is how long the run lasts.
	Duration time.Duration
	// Steady starts the sidecars at uniformly random moments of one
	// renewal period of the policy, as in a fleet that has run for long;
	// otherwise all start at once (a rollout).
	Steady bool
	// OutageAt and OutageFor place an identity-service outage after the
	// start; OutageFor zero means none.
	OutageAt, OutageFor time.Duration
	// RestartPerMinute is the fraction of the sidecars restarted in each
	// minute (at random moments of it), once all have started.
	RestartPerMinute float64
	// Seed makes the run reproducible: start times, restarts and every
	// sidecar's jitter derive from it.
	Seed uint64
	// MeasureFrom is where the load figures start: a steady fleet's
	// first hour still carries its start-up (the last sidecars start
	// while the first already renew).
	MeasureFrom time.Duration
}

// Result is what a run observed.
type Result struct {
	// PerSecond is the exchanges the service answered in each second.
	PerSecond []int32
	// Failed is how many of them failed (the outage's 503).
	Failed int64
	// Episodes are the spans in which a sidecar that had held a token
	// held none it would send.
	Episodes []Episode
	// Instances counts the sidecar instances started, restarts included.
	Instances int
}

// Episode is one span without a usable token, to the prober's resolution
// (1 s).
type Episode struct {
	// Slot is the sidecar (restarts keep the slot).
	Slot int
	// From and To are offsets from the start of the run.
	From, To time.Duration
	// Expired is when the token the sidecar last held expired (the last
	// one the service issued to it before the span), as an offset from
	// the start.
	Expired time.Duration
}

// probeEvery is the prober's resolution; probeAllEvery how often it asks
// every sidecar, not only those the service names as suspects (a check
// that nothing loses a token without a failed exchange).
const (
	probeEvery    = time.Second
	probeAllEvery = 60
)

// Simulate runs sc with policy p and returns what the identity service
// and the prober saw. Call it inside a synctest bubble for virtual time.
func Simulate(sc Scenario, p Policy) *Result {
	start := time.Now()
	var outFrom, outTo time.Time
	if sc.OutageFor > 0 {
		outFrom = start.Add(sc.OutageAt)
		outTo = outFrom.Add(sc.OutageFor)
	}
	f := &fleet{sc: sc, p: p, start: start, svc: NewService(sc.Life, sc.Latency, outFrom, outTo),
		slots: make([]*instance, sc.Routes), down: map[int]downSince{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	begun := f.startTimes()
	wg.Go(func() { f.startAll(ctx, begun) })
	if sc.RestartPerMinute > 0 {
		from := begun[len(begun)-1]
		wg.Go(func() { f.restarts(ctx, from) })
	}
	wg.Go(func() { f.probeLoop(ctx) })
	end := start.Add(sc.Duration)
	time.Sleep(time.Until(end))
	cancel()
	wg.Wait()
	f.stopAll(end)
	return &Result{PerSecond: f.svc.PerSecond(end), Failed: f.svc.Failed(), Episodes: f.episodes, Instances: len(f.inst)}
}

// fleet is a run in progress.
type fleet struct {
	sc    Scenario
	p     Policy
	start time.Time
	svc   *Service

	// mu guards the fields below: the starter, the restarter and the
	// prober all reach the instances.
	mu sync.Mutex
	// slots holds each sidecar's running instance; inst every instance
	// by id, nil once stopped.
	slots []*instance
	inst  []*instance
	// down holds the instances without a usable token.
	down     map[int]downSince
	episodes []Episode
}

// downSince is when an instance was first seen without a usable token,
// and when the last token it held expired.
type downSince struct {
	at, expired time.Time
}

// instance is one start of a sidecar.
type instance struct {
	id, slot int
	sc       Sidecar
	cancel   context.CancelFunc
}

// startTimes are the offsets at which the sidecars first start, in
// order: all at zero for a rollout, uniform over one renewal period for a
// steady state.
func (f *fleet) startTimes() []time.Duration {
	ts := make([]time.Duration, f.sc.Routes)
	if !f.sc.Steady {
		return ts
	}
	rng := rand.New(rand.NewPCG(f.sc.Seed, 1))
	period := f.p.Period(f.sc.Life)
	for i := range ts {
		ts[i] = time.Duration(rng.Int64N(int64(period)))
	}
	slices.Sort(ts)
	return ts
}

func (f *fleet) startAll(ctx context.Context, at []time.Duration) {
	for slot, d := range at {
		if !sleepUntil(ctx, f.start.Add(d)) {
			return
		}
		f.mu.Lock()
		f.launch(ctx, slot)
		f.mu.Unlock()
	}
}

// launch starts a new instance in slot. f.mu must be held.
func (f *fleet) launch(ctx context.Context, slot int) {
	id, src := f.svc.Register()
	// Each instance's jitter is its own stream, so a run is the same
	// whatever order the goroutines happen to run in.
	rng := rand.New(rand.NewPCG(f.sc.Seed, uint64(id)+2))
	ictx, cancel := context.WithCancel(ctx)
	in := &instance{id: id, slot: slot, cancel: cancel}
	in.sc = f.p.Start(ictx, src, "r"+strconv.Itoa(slot), rng.Float64)
	f.slots[slot] = in
	f.inst = append(f.inst, in)
}

// restarts restarts RestartPerMinute of the sidecars in each minute from
// from on, each at a random moment of its minute.
func (f *fleet) restarts(ctx context.Context, from time.Duration) {
	rng := rand.New(rand.NewPCG(f.sc.Seed, 0))
	per := int(math.Round(f.sc.RestartPerMinute * float64(f.sc.Routes)))
	perm := make([]int, f.sc.Routes)
	for i := range perm {
		perm[i] = i
	}
	type restart struct {
		at   time.Duration
		slot int
	}
	for minute := from.Truncate(time.Minute) + time.Minute; ; minute += time.Minute {
		rs := make([]restart, per)
		for i := range rs {
			// A partial Fisher-Yates shuffle: per distinct sidecars.
			j := i + rng.IntN(len(perm)-i)
			perm[i], perm[j] = perm[j], perm[i]
			rs[i] = restart{minute + time.Duration(rng.Int64N(int64(time.Minute))), perm[i]}
		}
		slices.SortFunc(rs, func(a, b restart) int { return int(a.at - b.at) })
		for _, r := range rs {
			if !sleepUntil(ctx, f.start.Add(r.at)) {
				return
			}
			f.restart(ctx, r.slot)
		}
	}
}

// restart stops slot's instance and starts a new one, as a pod restart
// does: the new sidecar holds no token until its first exchange.
func (f *fleet) restart(ctx context.Context, slot int) {
	f.mu.Lock()
	old := f.slots[slot]
	// Retired first, so the prober does not mistake a sidecar shutting
	// down for one that fails closed.
	f.retire(old, time.Now())
	f.mu.Unlock()
	old.cancel()
	old.sc.Wait()
	f.svc.Forget(old.id)
	f.mu.Lock()
	f.launch(ctx, slot)
	f.mu.Unlock()
}

// retire drops a stopped instance, ending its episode if it was down.
// f.mu must be held.
func (f *fleet) retire(in *instance, now time.Time) {
	f.inst[in.id] = nil
	if d, ok := f.down[in.id]; ok {
		f.record(in, d, now)
	}
}

// probeLoop asks the sidecars that may lack a token, every second at
// the half second (exchanges and restarts happen at arbitrary moments;
// the rollout's first answers come at the latency, before it), and every
// sidecar once a minute.
func (f *fleet) probeLoop(ctx context.Context) {
	for n := 0; ; n++ {
		if !sleepUntil(ctx, f.start.Add(probeEvery/2+time.Duration(n)*probeEvery)) {
			return
		}
		f.probe(n%probeAllEvery == probeAllEvery-1)
	}
}

// probe asks the suspects, the instances already down, or with all every
// instance, whether they hold a usable token, and opens or closes their
// episodes.
func (f *fleet) probe(all bool) {
	now := time.Now()
	ids := f.svc.Suspects()
	f.mu.Lock()
	defer f.mu.Unlock()
	if all {
		ids = ids[:0]
		for id, in := range f.inst {
			if in != nil {
				ids = append(ids, id)
			}
		}
	}
	for id := range f.down {
		ids = append(ids, id)
	}
	for _, id := range ids {
		in := f.inst[id]
		if in == nil {
			continue
		}
		since, down := f.down[id]
		if down && !f.svc.route(id).issued.After(since.at) {
			// Without a token since then, and none issued: still down.
			// (Asking would only cost the cache an error message.)
			continue
		}
		switch usable := in.sc.Usable(); {
		case usable && down:
			f.record(in, since, now)
			delete(f.down, id)
		case !usable && !down:
			if r := f.svc.route(id); r.everOK {
				f.down[id] = downSince{now, r.expiry}
			}
		}
	}
}

// record adds the episode of in that began with d and ended at to. f.mu
// must be held.
func (f *fleet) record(in *instance, d downSince, to time.Time) {
	f.episodes = append(f.episodes, Episode{Slot: in.slot, From: d.at.Sub(f.start), To: to.Sub(f.start), Expired: d.expired.Sub(f.start)})
	delete(f.down, in.id)
}

// stopAll waits for every instance to stop (their contexts have ended)
// and closes the episodes still open at end.
func (f *fleet) stopAll(end time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.inst {
		if in != nil {
			in.sc.Wait()
			f.retire(in, end)
		}
	}
}

// sleepUntil sleeps until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
