package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// goDefaultGOMAXPROCS is Go 1.26's container-aware default (runtime
// defaultGOMAXPROCS and adjustCgroupGOMAXPROCS, runtime/cgroup_linux.go):
// the CPU count (affinity), lowered to the cgroup's quota/period rounded
// up, but never below 2 by the limit. millicores 0: no limit.
func goDefaultGOMAXPROCS(ncpu, millicores int) int {
	if millicores <= 0 {
		return ncpu
	}
	limit := max((millicores+999)/1000, 2)
	return min(ncpu, limit)
}

// markdown renders the set's section of results.md.
func (r *variantReport) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("%s\n\n", variantSections[r.Set])
	how := fmt.Sprintf("`go run ./bench -%s`", r.Set)
	if r.FullRun {
		how = "`go run ./bench` (after the contenders)"
	}
	w("%s on %s, %s: credproxy alone (reverse listener and forward proxy, as above, logging at info level), started afresh for each variant, ", how, r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Machine)
	w("loaded with wrk at each connection count for %s after a second of warm-up; each figure is the median of %d %s, every round taking all variants in turn. ", r.Duration, r.Rounds, plural(r.Rounds, "round"))
	w("**Load average at the start %s, at the end %s**: requests/s and latencies move with the neighbours, so read the ratios between variants of one run and the CPU per request.\n\n", r.Load, r.LoadEnd)
	switch r.Set {
	case "gomaxprocs":
		r.gomaxprocsIntro(w)
	case "levers":
		w("credproxy's defaults first: its GOMAXPROCS policy (internal/rtpolicy: 1 with every listener on loopback, as here), GOGC=200 and GOMEMLIMIT=48MiB unless the environment sets them. ")
		w("Then Go's default GOMAXPROCS, and each runtime setting on top of the defaults, through the environment only (no code change). `x base` compares each with the first row at the same connection count.\n\n")
	case "features":
		w("Each optional feature on, one at a time, against the baseline (`x base`). The browser guard is always on (the baseline includes it for requests without Origin); its row adds an allowed origin and sends it. ")
		w("The unix-socket rows are loaded by the bench's Go client (wrk speaks only TCP): peer identity is compared with the bare unix socket, not with the wrk rows. ")
		w("After each measurement the variant is checked: a request its feature must refuse (no client key, a path outside the policy, a foreign Origin) is refused, and the audit log file was written; a variant that fails the check is left out as not measured. ")
		w("Peer identity is not checked that way (it would need a caller of another uid); the configuration refuses ALLOW_UIDS without a unix socket.\n\n")
	}
	r.table(w)
	for _, name := range sortedKeys(r.Failed) {
		w("\nNot measured: %s: `%s`\n", name, r.Failed[name])
	}
	switch r.Set {
	case "gomaxprocs":
		r.gomaxprocsWhy(w)
		w("\nThrottled periods: the share of the cgroup's 100 ms CFS periods in which it ran out of quota and was stopped until the next; throttled per s: how long it was held that way per second of measurement (the kernel's throttled_time, summed over CPUs). ")
		w("The policy these figures were drawn from is in [README.md](README.md#gomaxprocs).\n")
	case "features":
		r.featureBudgets(w)
		r.inProcess(w)
	}
	return b.String()
}

// table renders the rows, each against its base at the same connection
// count.
func (r *variantReport) table(w func(string, ...any)) {
	hasLimit := false
	for _, row := range r.Rows {
		hasLimit = hasLimit || row.Limit != ""
	}
	w("| connections | variant | GOMAXPROCS | requests/s | x base | p50 | p99 | CPU/request | rounds' range | x base |")
	if hasLimit {
		w(" throttled periods | throttled per s |")
	}
	w("\n|---:|---|---:|---:|---:|---:|---:|---:|---|---:|")
	if hasLimit {
		w("---:|---:|")
	}
	w("\n")
	for _, row := range r.Rows {
		bs := r.base(row).Result
		res := row.Result
		w("| %d | %s | %d | %.0f | %.2f | %s | %s | %s | %.0f-%.0f | %.2f |", row.Conns, row.Variant, row.GOMAXPROCS, res.RPS, res.RPS/max(bs.RPS, 1), us(res.P50), us(res.P99), cpu(res.CPU),
			float64(row.CPUMin)/1e3, float64(row.CPUMax)/1e3, float64(res.CPU)/float64(max(bs.CPU, 1)))
		if hasLimit {
			if row.Limit != "" {
				w(" %.0f%% | %s |", 100*row.Throttled, ms(row.ThrottleRate))
			} else {
				w(" - | - |")
			}
		}
		w("\n")
	}
}

// base is the row row is compared with: its Base variant's at the same
// connection count, else the first row at it (row itself if none).
func (r *variantReport) base(row variantRow) variantRow {
	var first *variantRow
	for i, b := range r.Rows {
		if b.Conns != row.Conns {
			continue
		}
		if first == nil {
			first = &r.Rows[i]
		}
		if row.Base != "" && b.Variant == row.Base {
			return b
		}
	}
	if first == nil {
		return row
	}
	return *first
}

// gomaxprocsWhy lists each variant's GOMAXPROCS with credproxy's reason.
func (r *variantReport) gomaxprocsWhy(w func(string, ...any)) {
	w("\nWhat credproxy ran with, from the `gomaxprocs` and `gomaxprocs_why` fields of its \"credproxy starting\" log line:\n\n| variant | GOMAXPROCS | credproxy's reason |\n|---|---:|---|\n")
	seen := map[string]bool{}
	for _, row := range r.Rows {
		if seen[row.Variant] {
			continue
		}
		seen[row.Variant] = true
		w("| %s | %d | %s |\n", row.Variant, row.GOMAXPROCS, row.GOMAXPROCSWhy)
	}
}

func (r *variantReport) gomaxprocsIntro(w func(string, ...any)) {
	w("credproxy's policy (internal/rtpolicy/procs.go), when GOMAXPROCS is not in its environment: a cgroup CPU limit of one core or less gives 1; every listener on loopback or a unix socket (a sidecar, as the bench's) gives 1; otherwise Go's default. ")
	w("Go 1.26's own default (runtime/debug.go, runtime/cgroup_linux.go): the CPU count (after the affinity mask), lowered to the cgroup's CPU limit, quota/period, rounded **up** to a whole number, ")
	w("and **never below 2** because of the limit (only a machine or affinity mask of one CPU gives 1). It re-reads the limit and the affinity at most once a second (sysmon) and changes GOMAXPROCS when they change; ")
	w("GOMAXPROCS in the environment, or a call to runtime.GOMAXPROCS (as the policy makes), turns both the default and the updates off. Kubernetes writes a limit of 100m as cpu.max `10000 100000` (v1: cfs_quota_us 10000, cfs_period_us 100000).\n\n")
	if r.Cgroup != "" {
		w("CPU limits here: %s.\n\n", r.Cgroup)
	}
	if len(r.Probes) > 0 {
		ncpu := r.Probes[0].NumCPU
		w("What Go alone picks, read by a probe (the harness re-executed, no policy) in a cgroup with each limit:\n\n")
		w("| CPU limit | cpu.max | Go's GOMAXPROCS measured here (%d CPUs) | by the rule, 4 CPUs | by the rule, 16 CPUs |\n|---|---|---:|---:|---:|\n", ncpu)
		for _, p := range r.Probes {
			m := 0
			if p.Limit != "" {
				m, _ = parseMillicores(p.Limit)
			}
			w("| %s | `%s` | %d | %d | %d |\n", or(p.Limit, "none"), p.CPUMax, p.GOMAXPROCS, goDefaultGOMAXPROCS(4, m), goDefaultGOMAXPROCS(16, m))
		}
		w("\n")
	}
	if r.Update != "" {
		w("Updates while running (Go's default only): %s.\n\n", r.Update)
	}
	w("Measured: credproxy with GOMAXPROCS unset (its policy; with its reverse listener on 0.0.0.0 the policy leaves Go's default, still loaded over 127.0.0.1), set to 1 and to all cores, and under each CPU limit unset (the policy) and set to what Go alone would pick. ")
	w("`x base` compares each with the policy's row (under a limit, that limit's); the GOMAXPROCS column is what credproxy logged at start.\n\n")
}

// featureBudgets states the budget verdicts at 32 connections: each
// feature's CPU per request against its base's, with both rows' range of
// rounds, and the feature's own cost in-process (edge's BenchmarkGate,
// one P) as a share of the base's CPU per request. When the rounds'
// ranges overlap, the end-to-end difference is noise and the verdict is
// read from the in-process share; otherwise from the end-to-end one.
func (r *variantReport) featureBudgets(w func(string, ...any)) {
	gate := map[string]goBench{}
	for _, g := range r.InProcess {
		if name, ok := strings.CutPrefix(g.Name, "BenchmarkGate/"); ok {
			gate[name] = g
		}
	}
	var lines []string
	for _, row := range r.Rows {
		if row.Budget == 0 || row.Conns != 32 {
			continue
		}
		bs := r.base(row)
		if bs.Variant == row.Variant || bs.Result.CPU == 0 {
			continue
		}
		lines = append(lines, budgetLine(row, bs, gate))
	}
	if len(lines) == 0 {
		w("\nBudgets: not computed (they are read at 32 connections, which this run did not measure).\n")
		return
	}
	w("\nBudgets, CPU per request at 32 connections against the baseline: end to end (median of the rounds, their range in brackets), and the feature's own cost in-process (`go test -run '^$' -bench BenchmarkGate -cpu 1 ./edge/`, median of %d runs, against the gate off) as a share of the baseline's CPU per request:\n\n", goBenchRuns)
	w("| feature | budget | end to end | in-process | |\n|---|---|---|---|---|\n")
	for _, l := range lines {
		w("%s\n", l)
	}
}

// budgetLine is one row of the budgets table: row's feature against its
// base bs, with its BenchmarkGate figures when gate has them.
func budgetLine(row, bs variantRow, gate map[string]goBench) string {
	ratio := float64(row.Result.CPU) / float64(bs.Result.CPU)
	overlap := row.CPUMin <= bs.CPUMax && bs.CPUMin <= row.CPUMax
	inProc, share, haveShare := "not measured", 0.0, false
	if on, ok := gate[row.Gate]; ok {
		if off, ok := gate["off"]; ok {
			share = (on.NsOp - off.NsOp) / float64(bs.Result.CPU)
			haveShare = true
			inProc = fmt.Sprintf("%s a request (%s-%s), %+.1f%%, %.0f allocs", nsDelta(on.NsOp-off.NsOp), nsStr(on.NsMin), nsStr(on.NsMax), 100*share, on.AllocsOp-off.AllocsOp)
		}
	}
	var verdict string
	switch {
	case overlap && haveShare:
		verdict = yes(share <= row.Budget) + " (from the in-process cost: end to end, the rounds' ranges overlap, the difference is within this run's noise)"
	case overlap:
		verdict = yes(ratio <= 1+row.Budget) + " (the rounds' ranges overlap: the difference is within this run's noise)"
	default:
		verdict = yes(ratio <= 1+row.Budget) + " (end to end)"
	}
	return fmt.Sprintf("| %s | <= +%.0f%% | %+.1f%%: %s (%s) vs %s (%s) | %s | %s |", row.Variant, 100*row.Budget, 100*(ratio-1),
		cpu(row.Result.CPU), cpuRange(row), cpu(bs.Result.CPU), cpuRange(bs), inProc, verdict)
}

func cpuRange(row variantRow) string {
	return fmt.Sprintf("%.0f-%.0f", float64(row.CPUMin)/1e3, float64(row.CPUMax)/1e3)
}

// inProcess renders the in-process benchmarks of the features without a
// switch in the binary, with the price of each computed from them.
func (r *variantReport) inProcess(w func(string, ...any)) {
	w("\nIn-process, on and off: the two features without a switch in the binary (`go test -run '^$' -bench 'BenchmarkReverseScanSize' -benchmem ./proxy/` and `-bench BenchmarkBrowserGuard ./bench/`), and the gate's own cost for keys, policy and audit log, read by the budgets above (`-bench BenchmarkGate -cpu 1 ./edge/`); `-count %d`, run after the variants above on the otherwise idle machine. ", goBenchRuns)
	w("For BenchmarkReverseScanSize, time/op is the wall time of one request of a sequential in-process client, proxy and upstream (one process); the others time the guard or the gate around a handler that does nothing. The shares below are of the baseline's CPU per request, whose answer is the bench upstream's 120 bytes:\n\n")
	if r.InProcessErr != "" {
		w("Not measured: `%s`\n", firstLineOf(r.InProcessErr))
	}
	if len(r.InProcess) == 0 {
		return
	}
	w("| benchmark | time/op (median) | runs' range | p50 of a request | B/op | allocs/op |\n|---|---:|---|---:|---:|---:|\n")
	by := map[string]goBench{}
	for _, g := range r.InProcess {
		by[g.Name] = g
		p50 := "-"
		if g.P50us > 0 {
			p50 = fmt.Sprintf("%.0f µs", g.P50us)
		}
		w("| %s | %s | %s-%s | %s | %.0f | %.0f |\n", g.Name, nsStr(g.NsOp), nsStr(g.NsMin), nsStr(g.NsMax), p50, g.BytesOp, g.AllocsOp)
	}
	// The price against what a request costs credproxy: the baseline's
	// CPU per request at one connection.
	var perReq time.Duration
	for _, row := range r.Rows {
		if row.Conns == 1 && row.Variant == featureBase {
			perReq = row.Result.CPU
		}
	}
	w("\n")
	for _, c := range []struct{ what, off, on string }{
		{"response body scan, 1 KiB JSON answer", "BenchmarkReverseScanSize/size=1KiB/scan=false", "BenchmarkReverseScanSize/size=1KiB/scan=true"},
		{"response body scan, 1 MiB JSON answer", "BenchmarkReverseScanSize/size=1MiB/scan=false", "BenchmarkReverseScanSize/size=1MiB/scan=true"},
		{"browser guard, request without Origin", "BenchmarkBrowserGuard/off", "BenchmarkBrowserGuard/on/no-origin"},
		{"browser guard, allowed Origin", "BenchmarkBrowserGuard/off", "BenchmarkBrowserGuard/on/allowed-origin"},
		{"browser guard, same-origin browser request", "BenchmarkBrowserGuard/off", "BenchmarkBrowserGuard/on/same-origin"},
	} {
		off, ok1 := by[c.off]
		on, ok2 := by[c.on]
		if !ok1 || !ok2 {
			continue
		}
		share := ""
		if perReq > 0 {
			share = fmt.Sprintf(", %.2f%% of the baseline's CPU per request at one connection (%s)", 100*(on.NsOp-off.NsOp)/float64(perReq), cpu(perReq))
		}
		w("- %s: %s a request on against off (runs' ranges on %s-%s, off %s-%s)%s; %+.0f allocs/op.\n", c.what, nsDelta(on.NsOp-off.NsOp),
			nsStr(on.NsMin), nsStr(on.NsMax), nsStr(off.NsMin), nsStr(off.NsMax), share, on.AllocsOp-off.AllocsOp)
	}
}

// nsStr renders ns in a fitting unit.
func nsStr(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// nsDelta renders a difference of ns/op with its sign, in a fitting unit.
func nsDelta(ns float64) string {
	d := time.Duration(ns)
	switch a := max(d, -d); {
	case a >= time.Millisecond:
		return fmt.Sprintf("%+.2f ms", ns/1e6)
	case a >= time.Microsecond:
		return fmt.Sprintf("%+.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%+.0f ns", ns)
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
