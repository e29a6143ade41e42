package fleet

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// Report is the fleet's figures: every scenario with both policies, and
// the data of the chart.
type Report struct {
	Routes        int
	Life, Latency time.Duration
	Seed          uint64
	Runs          []Run
	Chart         Chart
}

// Run is one scenario's figures, one per policy, credproxy first.
type Run struct {
	Scenario Scenario
	Figures  []Figures
}

// Chart is exchanges per second around one outage, per policy.
type Chart struct {
	Scenario            string
	From                time.Duration // offset of the first second shown
	OutageAt, OutageFor time.Duration
	Series              []Series
}

// Series is one policy's exchanges per second.
type Series struct {
	Policy    string
	PerSecond []int32
}

// Policies are the policies compared, credproxy first.
func Policies() []Policy { return []Policy{Credproxy{}, Wavefront{}} }

// chartScenario is the scenario the chart shows.
const chartScenario = "outage 10 min"

// Build runs every scenario of Scenarios with both policies. inBubble
// runs one simulation: the tests pass a function that runs it inside
// synctest.Test, for virtual time. progress, when set, hears of every
// run.
func Build(routes int, seed uint64, inBubble func(func()), progress func(Scenario, Figures)) *Report {
	rep := &Report{Routes: routes, Life: Life, Latency: Latency, Seed: seed}
	for _, sc := range Scenarios(routes, seed) {
		run := Run{Scenario: sc}
		for _, p := range Policies() {
			var res *Result
			inBubble(func() { res = Simulate(sc, p) })
			f := Summarize(sc, p, res)
			run.Figures = append(run.Figures, f)
			if progress != nil {
				progress(sc, f)
			}
			if sc.Name == chartScenario {
				rep.Chart.add(sc, p, res)
			}
		}
		rep.Runs = append(rep.Runs, run)
	}
	return rep
}

// add keeps res's exchanges per second from 5 minutes before the outage
// to 35 minutes after it, long enough to show a renewal period's echo.
func (c *Chart) add(sc Scenario, p Policy, res *Result) {
	c.Scenario, c.OutageAt, c.OutageFor = sc.Name, sc.OutageAt, sc.OutageFor
	c.From = sc.OutageAt - 5*time.Minute
	from, to := int(c.From/time.Second), int((sc.OutageAt+sc.OutageFor+35*time.Minute)/time.Second)
	to = min(to, len(res.PerSecond))
	c.Series = append(c.Series, Series{Policy: p.Name(), PerSecond: append([]int32(nil), res.PerSecond[from:to]...)})
}

// describe says what a scenario is, for the tables.
func describe(sc Scenario) string {
	h := fmt.Sprintf("%g h", (sc.Duration - sc.MeasureFrom).Hours())
	switch {
	case sc.OutageFor > 0:
		return fmt.Sprintf("%s, from %s", sc.Name, clock(sc.OutageAt))
	case sc.RestartPerMinute > 0:
		return fmt.Sprintf("steady, %g%% restarting every minute, %s (after an hour)", 100*sc.RestartPerMinute, h)
	case sc.Steady:
		return "steady state, " + h + " (after an hour)"
	}
	return "rollout (all start at once), " + h
}

// clock renders an offset from the start as h:mm:ss.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// span renders a length of time for the tables.
func span(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%.1f h", d.Hours())
}

// Markdown renders the "Fleet" section of bench/results.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("## Fleet\n\n")
	w("%d sidecars, one route each, with %.0f-minute tokens, against one identity service, simulated in virtual time (`testing/synctest`): ", r.Routes, r.Life.Minutes())
	w("each credproxy sidecar is the real `tokencache.Cache` with its defaults, run by its own loop; wavefront-proxy's policy (PROTOCOLS.md 1d: renew at `expires_in - 180 s`, no jitter, a fixed 10 s retry after a failure) runs as a small loop of its own against the same service. ")
	w("An exchange takes %d ms; during an outage the service answers every one with a 503. ", r.Latency.Milliseconds())
	w("A steady fleet starts its sidecars at random moments of one renewal period of its policy; its load is measured from the second hour on. ")
	w("A sidecar *fails closed* when, having held a token, it holds none it would send (credproxy: from 10 s before expiry; wavefront-proxy: from expiry), as seen by a probe every second. ")
	w("Written by `go run ./bench`, or `go run ./bench -fleet` alone (seed %d; a minute or two of CPU); being virtual time, the figures are the same on any machine and under any load.\n\n", r.Seed)
	w("![exchanges per second at the identity service around a 10-minute outage](fleet.svg)\n\n")
	w("### Load on the identity service\n\n")
	w("| scenario | policy | exchanges/s, mean | peak second | peak minute (any 60 s) | peak second after the first minute |\n|---|---|---:|---:|---:|---:|\n")
	for _, run := range r.Runs {
		if run.Scenario.OutageFor > 0 {
			continue
		}
		for _, f := range run.Figures {
			w("| %s | %s | %.1f | %d | %d | %d |\n", describe(run.Scenario), f.Policy, f.MeanPerSecond, f.PeakSecond, f.PeakMinute, f.PeakSecondAfterStart)
		}
	}
	w("\n### Identity-service outages\n\n")
	w("| outage | policy | sidecars failing closed | longest | time without a token, all sidecars | exchanges/s during | first 10 s after | first 60 s after | peak second after | peak second 10-45 min after |\n")
	w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, run := range r.Runs {
		if run.Scenario.OutageFor == 0 {
			continue
		}
		for _, f := range run.Figures {
			w("| %s | %s | %d | %s | %s | %.0f | %d | %d | %d | %d |\n", describe(run.Scenario), f.Policy, f.FailedClosed, span(f.LongestFailClosed), span(f.FailClosedTime),
				f.DuringPerSecond, f.After10s, f.After60s, f.PeakSecondAfter, f.EchoPeakSecond)
		}
	}
	b.WriteString(r.reading())
	return b.String()
}

// reading is what the tables say, in sentences, with the policies'
// arithmetic.
func (r *Report) reading() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	life := r.Life.Minutes()
	w("\nHow to read them:\n\n")
	w("- A rollout starts every sidecar in the same second. credproxy's jitter (renewal between 0.56 and 0.66 of the lifetime) spreads the first renewals over %.0f minutes and each later cycle further; ", 0.1*life)
	w("wavefront-proxy, without jitter, renews the whole fleet in the same second every %.0f minutes, for as long as the fleet runs.\n", life-3)
	w("- In an outage, credproxy serves the old token until 10 s before expiry and retries with a backoff of full jitter up to 60 s, so the retries after the outage spread over a minute; ")
	w("wavefront-proxy retries every 10 s, so every sidecar that failed comes back within the first 10 s, and those sidecars, renewed together, renew together again %.0f minutes later (the echo).\n", life-3)
	w("- A credproxy sidecar renews between %.1f and %.1f minutes into a %.0f-minute token, never later, so every sidecar rides out an outage shorter than the last third of its token's life (%.0f minutes, less up to a minute of backoff after the end); ", 0.56*life, 0.66*life, life, life/3)
	w("the few failing closed in the 10-minute outage renewed at the latest moment and their first retry after the end came too late. ")
	w("wavefront-proxy renews 3 minutes before expiry, so any outage over 3 minutes fails some of its sidecars closed.\n")
	w("- The price of that margin: credproxy exchanges once per 0.61 of a lifetime on average, wavefront-proxy once per %.0f%% of it, so in steady state credproxy's fleet makes %.0f%% more exchanges. ",
		100*(life-3)/life, 100*(life/(0.61*life)/(life/(life-3))-1))
	w("A restart costs an exchange at once but saves the renewal its old instance had coming, so restarts at 1%% a minute add about half an exchange each.\n")
	return b.String()
}

// SVG renders bench/fleet.svg: exchanges per second around the outage,
// one line per policy, the outage shaded.
func (r *Report) SVG() string {
	const (
		width, height = 900, 380
		left, right   = 60, 20
		top, bottom   = 50, 50
	)
	c := r.Chart
	n, peak := 0, int32(1)
	for _, s := range c.Series {
		n = max(n, len(s.PerSecond))
		for _, v := range s.PerSecond {
			peak = max(peak, v)
		}
	}
	n = max(n, 1)
	yMax := niceCeil(float64(peak))
	x := func(i int) float64 { return left + float64(i)*float64(width-left-right)/float64(n) }
	y := func(v float64) float64 { return float64(height-bottom) - v*float64(height-top-bottom)/yMax }
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	w(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	w(`<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(fmt.Sprintf(
		"Exchanges per second at the identity service: %d sidecars, %.0f-minute tokens, a %.0f-minute outage", r.Routes, r.Life.Minutes(), c.OutageFor.Minutes())))
	o0, o1 := int((c.OutageAt-c.From)/time.Second), int((c.OutageAt+c.OutageFor-c.From)/time.Second)
	w(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#ffebee"/>`+"\n", x(o0), top, x(o1)-x(o0), height-top-bottom)
	w(`<text x="%.1f" y="%d" font-size="11" fill="#c62828">outage: every exchange answered 503</text>`+"\n", x(o0)+4, top+14)
	r.axes(&b, n, yMax, x, y)
	colors := map[string]string{"credproxy": "#1565c0", "wavefront-proxy": "#ef6c00"}
	for i, s := range c.Series {
		var pts strings.Builder
		for j, v := range s.PerSecond {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(j), y(float64(v)))
		}
		w(`<polyline fill="none" stroke="%s" stroke-width="1" points="%s"/>`+"\n", colors[s.Policy], strings.TrimSpace(pts.String()))
		w(`<rect x="%d" y="34" width="12" height="3" fill="%s"/><text x="%d" y="39" font-size="12">%s</text>`+"\n", 560+i*150, colors[s.Policy], 576+i*150, html.EscapeString(s.Policy))
	}
	w(`<text x="10" y="%d" font-size="11" fill="#555">%s</text>`+"\n", height-8, html.EscapeString(fmt.Sprintf(
		"virtual time (testing/synctest), real tokencache.Cache per credproxy sidecar; go run ./bench -fleet, seed %d", r.Seed)))
	w("</svg>\n")
	return b.String()
}

// axes draws the time axis (minutes from the outage's start) and the
// exchanges-per-second axis.
func (r *Report) axes(b *strings.Builder, n int, yMax float64, x func(int) float64, y func(float64) float64) {
	c := r.Chart
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", x(0), y(0), x(n), y(0))
	w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", x(0), y(0), x(0), y(yMax))
	for m := -5; ; m += 5 {
		i := int((c.OutageAt + time.Duration(m)*time.Minute - c.From) / time.Second)
		if i > n {
			break
		}
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%+d</text>`+"\n",
			x(i), y(0), x(i), y(0)+4, x(i), y(0)+16, m)
	}
	w(`<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#555">minutes from the start of the outage</text>`+"\n", (x(0)+x(n))/2, y(0)+32)
	for i := 0; i <= 4; i++ {
		v := yMax * float64(i) / 4
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%.0f</text>`+"\n",
			x(0), y(v), x(n), y(v), x(0)-4, y(v)+4, v)
	}
	w(`<text x="14" y="%.1f" font-size="11" fill="#555" transform="rotate(-90 14 %.1f)" text-anchor="middle">exchanges per second</text>`+"\n", (y(0)+y(yMax))/2, (y(0)+y(yMax))/2)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
