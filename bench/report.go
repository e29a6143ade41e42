package main

import (
	"fmt"
	"html"
	"sort"
	"strings"
	"time"

	"github.com/credproxy/credproxy/bench/fleet"
)

// report is everything one run measured.
type report struct {
	Started  time.Time
	Duration time.Duration
	Rounds   int
	Machine  string
	// Load is the load average at the start of the run, LoadEnd at its
	// end (after the variant sets).
	Load, LoadEnd string
	Versions      map[string]string

	Reverse []reverseRow
	Forward []forwardRow

	RSSIdle, RSS256, RSSMillion int // KiB
	Served                      int64

	Hot []hotResult

	// RTT is the wide-area scenario's round trip, WAN its measurements.
	RTT time.Duration
	WAN []wanRow

	// Fleet is the last fleet simulation's figures (bench/fleet.json,
	// written by -fleet), rendered as results.md's Fleet section.
	Fleet *fleet.Report `json:"-"`

	// Variants are the variant sets a full run measured after the
	// contenders (gomaxprocs, levers, features), each rendered as its
	// own section; a set missing here keeps its section of results.md.
	Variants map[string]*variantReport `json:",omitempty"`
}

type reverseRow struct {
	Conns int
	By    map[string]result
}

type forwardRow struct {
	Conns   int
	NewConn bool
	By      map[string]result
}

// wanRow is one client's calls on one path of the wide-area scenario.
type wanRow struct {
	Client, Path string
	Calls        int
	P50, P90     time.Duration
}

var (
	reverseOrder = []string{"direct", "credproxy", "nginx", "haproxy", "gofloor", "gofloor-h1"}
	forwardOrder = []string{"direct", "credproxy", "mitmproxy"}
	colors       = map[string]string{"direct": "#9e9e9e", "credproxy": "#1565c0", "credproxy-fwd": "#64b5f6", "nginx": "#2e7d32", "haproxy": "#ef6c00", "mitmproxy": "#8e24aa", "gofloor": "#00838f", "gofloor-h1": "#4dd0e1"}
)

func (r *report) credproxyRPS(conns int) float64 {
	for _, row := range r.Reverse {
		if row.Conns == conns {
			return row.By["credproxy"].RPS
		}
	}
	return 0
}

func (r *report) reverse(conns int) (reverseRow, bool) {
	for _, row := range r.Reverse {
		if row.Conns == conns {
			return row, true
		}
	}
	return reverseRow{}, false
}

func us(d time.Duration) string {
	if d >= 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func cpu(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func mib(kib int) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func yes(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// target is one line of the targets table.
type target struct{ what, goal, got, verdict string }

func (r *report) targets() []target {
	var ts []target
	if row, ok := r.reverse(32); ok {
		ratio := row.By["credproxy"].RPS / row.By["nginx"].RPS
		ts = append(ts, target{"reverse, 32 connections: requests/s vs nginx", ">= 0.90x", fmt.Sprintf("%.2fx (%.0f vs %.0f); CPU/request %s vs %s", ratio, row.By["credproxy"].RPS, row.By["nginx"].RPS, cpu(row.By["credproxy"].CPU), cpu(row.By["nginx"].CPU)), yes(ratio >= 0.9)})
	}
	ts = append(ts, r.sidecarTargets()...)
	if row, ok := r.reverse(1); ok {
		added := row.By["credproxy"].P50 - row.By["direct"].P50
		ts = append(ts, target{"reverse, 1 connection: p50 added to a direct call", "<= 50 µs", fmt.Sprintf("%s (%s vs %s)", us(added), us(row.By["credproxy"].P50), us(row.By["direct"].P50)), yes(added <= 50*time.Microsecond)})
	}
	for _, row := range r.Forward {
		ratio := row.By["credproxy"].RPS / row.By["mitmproxy"].RPS
		verdict := yes(ratio >= 10)
		if bound := row.By["direct"].RPS / row.By["mitmproxy"].RPS; ratio < 10 && bound < 10 {
			verdict += fmt.Sprintf(" (out of reach here: a direct call without proxy is %.1fx)", bound)
		}
		ts = append(ts, target{fmt.Sprintf("forward interception, %s, %d conn.: requests/s vs mitmproxy", connMode(row.NewConn), row.Conns), ">= 10x", fmt.Sprintf("%.1fx (%.0f vs %.0f); CPU/request %.1fx less", ratio, row.By["credproxy"].RPS, row.By["mitmproxy"].RPS, float64(row.By["mitmproxy"].CPU)/float64(max(row.By["credproxy"].CPU, 1))), verdict})
	}
	ts = append(ts, target{"credproxy RSS idle", "<= 20 MiB", mib(r.RSSIdle), yes(r.RSSIdle <= 20*1024)})
	if r.RSS256 > 0 { // a partial run without 256 connections has none
		ts = append(ts, target{"credproxy RSS at 256 connections (peak)", "<= 64 MiB", mib(r.RSS256), yes(r.RSS256 <= 64*1024)})
	}
	for _, h := range r.Hot {
		ts = append(ts, target{"token hot path: " + h.Name, "0 allocs, <= 10 ns", fmt.Sprintf("%d allocs, %.1f ns", h.AllocsOp, h.NsOp), yes(h.AllocsOp == 0 && h.NsOp <= 10)})
	}
	return ts
}

// sidecarTargets are the sidecar cost targets, from the reverse-mode table
// (credproxy with its defaults: neither GOMAXPROCS nor GOGC in its
// environment, as a full run measures it): CPU per request against
// nginx's (one worker) and requests/s against the Go floor.
func (r *report) sidecarTargets() []target {
	var ts []target
	for _, c := range []struct {
		conns int
		limit float64
	}{{32, 2.0}, {1, 2.2}} {
		row, ok := r.reverse(c.conns)
		cp, ng := row.By["credproxy"].CPU, row.By["nginx"].CPU
		if !ok || cp == 0 || ng == 0 {
			continue
		}
		ratio := float64(cp) / float64(ng)
		ts = append(ts, target{fmt.Sprintf("reverse, %d %s: CPU/request vs nginx (one worker)", c.conns, plural(c.conns, "connection")),
			fmt.Sprintf("<= %.1fx", c.limit), fmt.Sprintf("%.2fx (%s vs %s)", ratio, cpu(cp), cpu(ng)), yes(ratio <= c.limit)})
	}
	if row, ok := r.reverse(32); ok && row.By["gofloor"].RPS > 0 {
		cp, gf, h1 := row.By["credproxy"].RPS, row.By["gofloor"].RPS, row.By["gofloor-h1"].RPS
		got := fmt.Sprintf("%.2fx (%.0f vs %.0f)", cp/gf, cp, gf)
		if h1 > 0 {
			got += fmt.Sprintf("; vs gofloor-h1 (HTTP/1.1) %.2fx (%.0f)", cp/h1, h1)
		}
		ts = append(ts, target{"reverse, 32 connections: requests/s vs the Go floor (gofloor, HTTP/2 upstream)", ">= 1.4x", got, yes(cp/gf >= 1.4)})
	}
	return ts
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func connMode(newConn bool) string {
	if newConn {
		return "new connection per request"
	}
	return "keep-alive"
}

// markdown renders results.md.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# credproxy benchmarks\n\n")
	w("Measured by `go run ./bench` on %s, %s, %s per measurement. ", r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Machine, r.Duration)
	w("Everything runs on loopback on the same machine: the TLS upstream (a Go server in a process of its own), the contender, and the load generator ")
	w("share the CPUs, so every figure includes the cost of the upstream and of the load generator. On 2 cores they all compete: ")
	w("absolute numbers are lower than on a bigger machine, the ratios are what to read. ")
	w("**Load average when the run started: %s; when it ended: %s** (other work on the machine makes requests/s noisy; CPU/request much less so). ", r.Load, or(r.LoadEnd, "not recorded"))
	if len(r.Variants) > 0 {
		w("The same run then measured credproxy alone in the variant sets below (GOMAXPROCS, runtime levers, the price of each feature), each section with its own time and load average. ")
	}
	w("How it is measured, and where credproxy's time goes: [README.md](README.md).\n\n")
	w("![credproxy against nginx, HAProxy and mitmproxy](results.svg)\n\n")

	w("## Targets\n\n| what | target | measured | |\n|---|---|---|---|\n")
	for _, t := range r.targets() {
		w("| %s | %s | %s | %s |\n", t.what, t.goal, t.got, t.verdict)
	}

	w("\n## Reverse mode\n\nThe app calls a plain-HTTP listener; the proxy adds `Authorization: Bearer <token>` and forwards over TLS with keep-alive to the upstream. ")
	w("`direct` is wrk calling the TLS upstream itself with the header. ")
	w("nginx runs one worker (`worker_processes 1`), as the targets compare, a single event loop as a sidecar runs: its CPU per request is the same as with `auto`. ")
	w("`gofloor` is the Go floor: a minimal `httputil.ReverseProxy` that sets the header (bench/gofloor, the shape of Vault Proxy and most Go sidecars: no exchange, no answer scan, no guard, no metrics) with net/http's default transport, which speaks HTTP/2 to this upstream; `gofloor-h1` is the same over HTTP/1.1, as credproxy speaks it. ")
	w("Load: wrk, keep-alive, `--latency`; ")
	w("each figure is the median of %d rounds, every round measuring all contenders in turn.\n\n", r.Rounds)
	w("CPU/request is the contender's own CPU time (all its processes, user and system) divided by the requests it served: ")
	w("unlike requests/s it hardly depends on what else the machine runs.\n\n")
	w("| connections | contender | requests/s | x nginx | p50 | p99 | CPU/request |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Reverse {
		for _, name := range reverseOrder {
			res, ok := row.By[name]
			if !ok {
				continue // a report saved before this contender existed
			}
			w("| %d | %s | %.0f | %.2f | %s | %s | %s |\n", row.Conns, name, res.RPS, res.RPS/row.By["nginx"].RPS, us(res.P50), us(res.P99), cpu(res.CPU))
		}
	}

	w("\n## Forward mode\n\nA client with `HTTPS_PROXY` calls `https://127.0.0.1:<upstream>/`: credproxy and mitmproxy intercept the TLS connection (the client trusts their CA), ")
	w("add the header and re-encrypt to the upstream. mitmproxy runs `mitmdump -q --ssl-insecure -s inject.py` with an addon that sets the header for the upstream host. ")
	w("`direct` is the same client calling the upstream without a proxy. Load: a Go client (wrk does not speak CONNECT), one connection per worker; ")
	w("with a new connection per request every request pays the CONNECT and a full TLS handshake, as a script running curl in a loop does.\n\n")
	w("| connections | connection use | contender | requests/s | x mitmproxy | p50 | p99 | CPU/request |\n|---:|---|---|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Forward {
		for _, name := range forwardOrder {
			res := row.By[name]
			w("| %d | %s | %s | %.0f | %.1f | %s | %s | %s |\n", row.Conns, connMode(row.NewConn), name, res.RPS, res.RPS/row.By["mitmproxy"].RPS, us(res.P50), us(res.P99), cpu(res.CPU))
		}
	}

	w("\n## Memory\n\ncredproxy's resident set (VmRSS), with both the reverse listener and the forward proxy on:\n\n")
	w("| when | RSS |\n|---|---:|\n| idle, after start-up and readiness | %s |\n| peak during the 256-connection run | %s |\n| after %d requests, idle again | %s |\n", mib(r.RSSIdle), mib(r.RSS256), r.Served, mib(r.RSSMillion))

	b.WriteString(r.wideAreaMarkdown())

	w("\n## Token hot path\n\n`go test -bench BenchmarkTokenHot -benchmem ./tokencache`: a valid token is an atomic load.\n\n| benchmark | ns/op | allocs/op |\n|---|---:|---:|\n")
	for _, h := range r.Hot {
		w("| %s | %.2f | %d |\n", h.Name, h.NsOp, h.AllocsOp)
	}

	if r.Fleet != nil {
		w("\n%s", r.Fleet.Markdown())
	}

	w("\n## Versions\n\n")
	keys := make([]string, 0, len(r.Versions))
	for k := range r.Versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w("- %s: `%s`\n", k, r.Versions[k])
	}
	w("\nThe configurations used are written to `bench/results/` (nginx.conf, haproxy.cfg, inject.py) with each process's log. ")
	w("The per-request work of both modes also has in-process Go benchmarks, for review: `go test -run '^$' -bench . -benchmem ./proxy/`.\n")
	return b.String()
}

// wan returns the wide-area row of client on path.
func (r *report) wan(client, path string) (wanRow, bool) {
	for _, row := range r.WAN {
		if row.Client == client && row.Path == path {
			return row, true
		}
	}
	return wanRow{}, false
}

// speedup is how many times faster than the direct call row is, at the
// median.
func (r *report) speedup(row wanRow) float64 {
	d, ok := r.wan(row.Client, "direct")
	if !ok || row.P50 == 0 {
		return 0
	}
	return float64(d.P50) / float64(row.P50)
}

// wideAreaMarkdown renders the "Wide area" section, or nothing when the
// part did not run.
func (r *report) wideAreaMarkdown() string {
	if len(r.WAN) == 0 {
		return ""
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Wide area\n\nThe upstream is %s away (a round trip), as a SaaS API is from a cluster: ", ms(r.RTT))
	w("a relay in the harness delays every byte each way by half of it, and the TCP handshake too (it connects onward one way after accepting, and lets the client's first bytes leave only a round trip after its connect). ")
	w("The proxies run beside the client on loopback, with the upstream behind the relay; credproxy and nginx (the same configuration as above, `keepalive 256`) are warmed with a few calls first, as a running sidecar is. ")
	w("Clients: a shell script calling `curl` in a loop (a new process, TCP connection and TLS handshake per call, as legacy scripts do; the time includes starting curl), ")
	w("a Python `requests.Session` and a Go client, both with keep-alive (their first direct call pays the handshakes). Each makes %d calls per path; times are per call.\n\n", r.WAN[0].Calls)
	if cp, ok := r.wan("curl loop", "credproxy"); ok {
		d, _ := r.wan("curl loop", "direct")
		w("**A curl loop: %s per call direct, %s through credproxy, %.1fx faster.** ", ms(d.P50), ms(cp.P50), r.speedup(cp))
		w("Direct, every call pays a TCP and a TLS handshake over the link before its request; through credproxy it pays one round trip, on a pooled connection. ")
		w("Clients that keep their connection pay one round trip per call either way: for them the table shows what a proxy adds.\n\n")
	}
	w("| client | path | median | p90 | speedup over direct |\n|---|---|---:|---:|---:|\n")
	for _, client := range wanClients {
		for _, path := range wanPaths {
			if row, ok := r.wan(client, path); ok {
				w("| %s | %s | %s | %s | %.2fx |\n", client, wanPathNames[path], ms(row.P50), ms(row.P90), r.speedup(row))
			}
		}
	}
	return b.String()
}

// ms renders a duration in milliseconds, to a tenth.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// bar is one bar of a chart.
type bar struct {
	name  string
	value float64
	label string
}

// group is a labelled group of bars.
type group struct {
	label string
	bars  []bar
}

// panel draws a horizontal grouped bar chart at y and returns its height.
func panel(b *strings.Builder, y int, title, unit string, groups []group) int {
	const (
		left   = 90
		width  = 560
		barH   = 14
		gap    = 3
		groupG = 12
	)
	maxV := 0.0
	for _, g := range groups {
		for _, br := range g.bars {
			maxV = max(maxV, br.value)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", y+16, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" fill="#555" text-anchor="end">%s</text>`+"\n", 890, y+16, html.EscapeString(unit))
	cy := y + 26
	for _, g := range groups {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" font-weight="bold" fill="#444">%s</text>`+"\n", 10, cy+11, html.EscapeString(g.label))
		cy += 16
		for _, br := range g.bars {
			wd := int(float64(width) * br.value / maxV)
			fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#333">%s</text>`, left-4, cy+barH-3, html.EscapeString(br.name))
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, left, cy, max(wd, 1), barH, colors[br.name])
			fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" fill="#222">%s</text>`+"\n", left+max(wd, 1)+4, cy+barH-3, html.EscapeString(br.label))
			cy += barH + gap
		}
		cy += groupG
	}
	return cy - y
}

// svg renders results.svg: reverse requests/s, reverse p50 at one
// connection, and forward requests/s.
func (r *report) svg() string {
	var body strings.Builder
	y := 10
	var rev []group
	for _, row := range r.Reverse {
		g := group{label: fmt.Sprintf("%d conn.", row.Conns)}
		for _, name := range reverseOrder {
			res, ok := row.By[name]
			if !ok {
				continue
			}
			g.bars = append(g.bars, bar{name, res.RPS, fmt.Sprintf("%.0f (%.2fx nginx)", res.RPS, res.RPS/row.By["nginx"].RPS)})
		}
		rev = append(rev, g)
	}
	y += panel(&body, y, "Reverse mode: requests/s, TLS upstream with keep-alive", "higher is better", rev) + 10
	if row, ok := r.reverse(1); ok {
		g := group{label: "1 conn."}
		for _, name := range reverseOrder {
			if _, ok := row.By[name]; !ok {
				continue
			}
			g.bars = append(g.bars, bar{name, float64(row.By[name].P50) / 1e3, fmt.Sprintf("p50 %s, p99 %s", us(row.By[name].P50), us(row.By[name].P99))})
		}
		y += panel(&body, y, "Reverse mode: latency at 1 connection", "lower is better", []group{g}) + 10
	}
	var cpuG []group
	for _, row := range r.Reverse {
		g := group{label: fmt.Sprintf("reverse, %d conn.", row.Conns)}
		for _, name := range reverseOrder[1:] {
			if _, ok := row.By[name]; !ok {
				continue
			}
			c := row.By[name].CPU
			g.bars = append(g.bars, bar{name, float64(c), cpu(c)})
		}
		cpuG = append(cpuG, g)
	}
	y += panel(&body, y, "CPU time per request (all of the contender's processes)", "lower is better", cpuG) + 10
	var fwd []group
	for _, row := range r.Forward {
		g := group{label: fmt.Sprintf("%d conn., %s", row.Conns, map[bool]string{false: "keep-alive", true: "new conn."}[row.NewConn])}
		for _, name := range forwardOrder {
			res := row.By[name]
			g.bars = append(g.bars, bar{name, res.RPS, fmt.Sprintf("%.0f (%.1fx mitmproxy)", res.RPS, res.RPS/row.By["mitmproxy"].RPS)})
		}
		fwd = append(fwd, g)
	}
	y += panel(&body, y, "Forward mode (TLS interception): requests/s", "higher is better", fwd) + 10
	if len(r.WAN) > 0 {
		y += panel(&body, y, fmt.Sprintf("Wide area: time per call, upstream %s away (median)", ms(r.RTT)), "lower is better", r.wanGroups()) + 10
	}
	fmt.Fprintf(&body, `<text x="10" y="%d" font-size="11" fill="#555">%s</text>`+"\n", y+4, html.EscapeString(fmt.Sprintf("go run ./bench, %s, %s; everything on one machine over loopback", r.Started.UTC().Format("2006-01-02"), r.Machine)))
	y += 14
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="900" height="%d" viewBox="0 0 900 %d" font-family="Helvetica, Arial, sans-serif">`+"\n"+
		`<rect width="100%%" height="100%%" fill="white"/>`+"\n%s</svg>\n", y, y, body.String())
}

// wanGroups are the wide-area chart's bars: per client, each path's median.
func (r *report) wanGroups() []group {
	var gs []group
	for _, client := range wanClients {
		g := group{label: client}
		for _, path := range wanPaths {
			if row, ok := r.wan(client, path); ok {
				g.bars = append(g.bars, bar{path, float64(row.P50), fmt.Sprintf("%s (p90 %s), %.1fx direct", ms(row.P50), ms(row.P90), r.speedup(row))})
			}
		}
		gs = append(gs, g)
	}
	return gs
}
