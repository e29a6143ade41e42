package fleet

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Figures are one policy's numbers in one scenario.
type Figures struct {
	Policy string
	// Exchanges and Failed count what reached the identity service.
	Exchanges, Failed int64
	// MeanPerSecond, PeakSecond and PeakMinute (any 60 s) are exchanges
	// at the service over the whole run.
	MeanPerSecond float64
	PeakSecond    int32
	PeakSecondAt  time.Duration
	PeakMinute    int64
	// PeakSecondAfterStart is the peak second after the first minute:
	// the renewal waves of a rollout, start-up itself left out.
	PeakSecondAfterStart int32
	// FailedClosed counts the sidecars that, having held a token, held
	// none they would send for a while; FailClosedTime sums those
	// spans, LongestFailClosed is the longest.
	FailedClosed      int
	FailClosedTime    time.Duration
	LongestFailClosed time.Duration
	// With an outage: exchanges per second during it, in the first 10 s
	// and 60 s after it ended, and the peak second after it.
	DuringPerSecond    float64 `json:",omitempty"`
	After10s, After60s int64   `json:",omitempty"`
	PeakSecondAfter    int32   `json:",omitempty"`
	// EchoPeakSecond is the peak second from 10 minutes after the outage
	// to the end of the run: the renewals of the sidecars that
	// recovered together, one renewal period later.
	EchoPeakSecond int32 `json:",omitempty"`
}

// Summarize computes the figures of a run.
func Summarize(sc Scenario, p Policy, r *Result) Figures {
	f := Figures{Policy: p.Name(), Failed: r.Failed}
	ps := r.PerSecond[min(int(sc.MeasureFrom/time.Second), len(r.PerSecond)):]
	var window int64
	for i, v := range ps {
		f.Exchanges += int64(v)
		if v > f.PeakSecond {
			f.PeakSecond, f.PeakSecondAt = v, time.Duration(i)*time.Second
		}
		if i >= 60 {
			f.PeakSecondAfterStart = max(f.PeakSecondAfterStart, v)
		}
		window += int64(v)
		if i >= 60 {
			window -= int64(ps[i-60])
		}
		f.PeakMinute = max(f.PeakMinute, window)
	}
	if len(ps) > 0 {
		f.MeanPerSecond = float64(f.Exchanges) / float64(len(ps))
	}
	slots := map[int]bool{}
	for _, e := range r.Episodes {
		slots[e.Slot] = true
		f.FailClosedTime += e.To - e.From
		f.LongestFailClosed = max(f.LongestFailClosed, e.To-e.From)
	}
	f.FailedClosed = len(slots)
	if sc.OutageFor > 0 {
		ps := r.PerSecond
		from, to := int(sc.OutageAt/time.Second), int((sc.OutageAt+sc.OutageFor)/time.Second)
		f.DuringPerSecond = float64(sum(ps, from, to)) / float64(to-from)
		f.After10s, f.After60s = sum(ps, to, to+10), sum(ps, to, to+60)
		for i := to; i < len(ps); i++ {
			if i < to+600 {
				f.PeakSecondAfter = max(f.PeakSecondAfter, ps[i])
			} else {
				f.EchoPeakSecond = max(f.EchoPeakSecond, ps[i])
			}
		}
	}
	return f
}

func sum(ps []int32, from, to int) int64 {
	var n int64
	for i := max(from, 0); i < min(to, len(ps)); i++ {
		n += int64(ps[i])
	}
	return n
}

// Standard fleet shape: 30-minute tokens (CSP), 100 ms per exchange.
const (
	Life    = 30 * time.Minute
	Latency = 100 * time.Millisecond
)

// Scenarios are the runs of the figures: a rollout, a day of steady
// state, outages of 5, 10 and 20 minutes at random phases of a steady
// fleet, and a steady fleet with 1% of its sidecars restarting every
// minute.
func Scenarios(routes int, seed uint64) []Scenario {
	base := Scenario{Routes: routes, Life: Life, Latency: Latency, Seed: seed}
	rollout := base
	rollout.Name, rollout.Duration = "rollout", 6*time.Hour
	steady := base
	steady.Name, steady.Steady, steady.MeasureFrom = "steady", true, time.Hour
	steady.Duration = steady.MeasureFrom + 24*time.Hour
	scs := []Scenario{rollout, steady}
	for _, d := range []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute} {
		scs = append(scs, Outage(base, d, seed))
	}
	restarts := steady
	restarts.Name, restarts.Duration, restarts.RestartPerMinute = "restarts", restarts.MeasureFrom+6*time.Hour, 0.01
	return append(scs, restarts)
}

// Outage is a steady fleet with an outage of d starting at a random
// moment (from phase) in the half hour after both policies' fleets have
// all started (30 min), and run until 45 min after it ends.
func Outage(base Scenario, d time.Duration, phase uint64) Scenario {
	rng := rand.New(rand.NewPCG(phase, uint64(d)))
	sc := base
	sc.Name = fmt.Sprintf("outage %d min", int(d.Minutes()))
	sc.Steady = true
	sc.OutageFor = d
	sc.OutageAt = 30*time.Minute + time.Duration(rng.Int64N(int64(30*time.Minute))).Truncate(time.Second)
	sc.Duration = sc.OutageAt + d + 45*time.Minute
	return sc
}
