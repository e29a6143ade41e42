package main

import (
	"fmt"
	"sort"
	"strings"
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
	w("`go run ./bench -%s` on %s, %s: credproxy alone (reverse listener and forward proxy, as above), started afresh for each variant, ", r.Set, r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Machine)
	w("loaded with wrk at each connection count for %s after a second of warm-up; each figure is the median of %d rounds, every round taking all variants in turn. ", r.Duration, r.Rounds)
	w("**Load average at the start %s, at the end %s**: requests/s and latencies move with the neighbours, so read the ratios between variants of one run and the CPU per request.\n\n", r.Load, r.LoadEnd)
	switch r.Set {
	case "gomaxprocs":
		r.gomaxprocsIntro(w)
	case "levers":
		w("Runtime settings, one at a time, through the environment only (no code change). `x base` compares each with the first row at the same connection count.\n\n")
	case "features":
		w("Each optional feature on, one at a time, against the baseline (`x base`). The browser guard is always on (the baseline includes it for requests without Origin); its row adds an allowed origin and sends it. ")
		w("The unix-socket rows are loaded by the bench's Go client (wrk speaks only TCP), so compare them with each other, not with the wrk rows. ")
		w("The response body scan has no switch in the binary: `go test -run '^$' -bench BenchmarkReverseScanSize -benchmem ./proxy/` measures it on and off for a 1 KiB and a 1 MiB JSON answer. ")
		w("A feature not yet wired into the binary measures as the baseline.\n\n")
	}
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
	base := map[int]result{}
	for _, row := range r.Rows {
		if _, ok := base[row.Conns]; !ok {
			base[row.Conns] = row.Result
		}
		bs := base[row.Conns]
		res := row.Result
		w("| %d | %s | %d | %.0f | %.2f | %s | %s | %s | %.0f-%.0f | %.2f |", row.Conns, row.Variant, row.GOMAXPROCS, res.RPS, res.RPS/bs.RPS, us(res.P50), us(res.P99), cpu(res.CPU),
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
	for _, name := range sortedKeys(r.Failed) {
		w("\nNot measured: %s: `%s`\n", name, r.Failed[name])
	}
	if r.Set == "gomaxprocs" {
		w("\nThrottled periods: the share of the cgroup's 100 ms CFS periods in which it ran out of quota and was stopped until the next; throttled per s: how long it was held that way per second of measurement (the kernel's throttled_time, summed over CPUs). ")
		w("The recommendation drawn from these figures is in [README.md](README.md#gomaxprocs).\n")
	}
	return b.String()
}

func (r *variantReport) gomaxprocsIntro(w func(string, ...any)) {
	w("What Go 1.26 picks when GOMAXPROCS is not set (runtime/debug.go, runtime/cgroup_linux.go): the CPU count (after the affinity mask), lowered to the cgroup's CPU limit, quota/period, rounded **up** to a whole number, ")
	w("and **never below 2** because of the limit (only a machine or affinity mask of one CPU gives 1). It re-reads the limit and the affinity at most once a second (sysmon) and changes GOMAXPROCS when they change; ")
	w("GOMAXPROCS in the environment, or a call to runtime.GOMAXPROCS, turns both the default and the updates off. Kubernetes writes a limit of 100m as cpu.max `10000 100000` (v1: cfs_quota_us 10000, cfs_period_us 100000).\n\n")
	if r.Cgroup != "" {
		w("CPU limits here: %s.\n\n", r.Cgroup)
	}
	if len(r.Probes) > 0 {
		ncpu := r.Probes[0].NumCPU
		w("| CPU limit | cpu.max | GOMAXPROCS measured here (%d CPUs) | by the rule, 4 CPUs | by the rule, 16 CPUs |\n|---|---|---:|---:|---:|\n", ncpu)
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
		w("Updates while running: %s.\n\n", r.Update)
	}
	w("Measured: GOMAXPROCS 1, 2 and unset, and under CPU limits with GOMAXPROCS unset and 1. `x base` compares each with the first row at the same connection count; the GOMAXPROCS column is what a probe started the same way (environment and cgroup) read.\n\n")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
