package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// goBench is one Go sub-benchmark: the median of its runs, and the
// range of ns/op.
type goBench struct {
	Name         string
	Runs         int
	NsOp         float64
	NsMin, NsMax float64
	P50us        float64 `json:",omitempty"` // the latency of one request, where the benchmark reports it
	BytesOp      float64
	AllocsOp     float64
}

// goBenchRuns is -count for the in-process benchmarks.
const goBenchRuns = 3

// featureBenchmarks runs the in-process benchmarks of the features, the
// way runHot runs the token hot path: the response body scan on and off
// (proxy's BenchmarkReverseScanSize, a 1 KiB and a 1 MiB JSON answer) and
// the browser guard off and on (bench's BenchmarkBrowserGuard), which
// have no switch in the binary, and the gate's own cost for client keys,
// the request policy and the audit log (edge's BenchmarkGate, on one P as
// a sidecar runs, so that the audit writer's work is in the figure): the
// budgets are read from it, because end to end a few per cent are within
// the noise of one run on 2 shared cores.
func featureBenchmarks(ctx context.Context, root string) ([]goBench, error) {
	logf("features: in-process benchmarks (go test -bench, -count %d)", goBenchRuns)
	var all []goBench
	for _, b := range []struct{ pattern, pkg, cpu string }{
		{"^BenchmarkReverseScanSize$", "./proxy/", ""},
		{"^BenchmarkBrowserGuard$", "./bench/", ""},
		{"^BenchmarkGate$", "./edge/", "1"},
	} {
		args := []string{"test", "-run", "^$", "-bench", b.pattern, "-benchmem", "-count", strconv.Itoa(goBenchRuns)}
		if b.cpu != "" {
			args = append(args, "-cpu", b.cpu)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, b.pkg)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return all, fmt.Errorf("go test -bench %s %s: %w\n%s", b.pattern, b.pkg, err, out)
		}
		got := parseGoBench(string(out))
		if len(got) == 0 {
			return all, fmt.Errorf("go test -bench %s %s: no results in:\n%s", b.pattern, b.pkg, out)
		}
		for _, g := range got {
			logf("  %s: %.0f ns/op (%.0f-%.0f), %.0f allocs/op", g.Name, g.NsOp, g.NsMin, g.NsMax, g.AllocsOp)
		}
		all = append(all, got...)
	}
	return all, nil
}

var goBenchLine = regexp.MustCompile(`(?m)^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.+)$`)

// parseGoBench reads go test -bench output: per benchmark, in the order
// first seen, the median of each figure over its runs.
func parseGoBench(out string) []goBench {
	var order []string
	runs := map[string][]map[string]float64{}
	for _, m := range goBenchLine.FindAllStringSubmatch(out, -1) {
		f := strings.Fields(m[2])
		vals := map[string]float64{}
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				vals[f[i+1]] = v
			}
		}
		if _, ok := vals["ns/op"]; !ok {
			continue
		}
		if runs[m[1]] == nil {
			order = append(order, m[1])
		}
		runs[m[1]] = append(runs[m[1]], vals)
	}
	var res []goBench
	for _, name := range order {
		rs := runs[name]
		med := func(unit string) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = r[unit]
			}
			return medianF(v)
		}
		ns := make([]float64, len(rs))
		for i, r := range rs {
			ns[i] = r["ns/op"]
		}
		res = append(res, goBench{Name: name, Runs: len(rs), NsOp: med("ns/op"), NsMin: slices.Min(ns), NsMax: slices.Max(ns),
			P50us: med("p50-us"), BytesOp: med("B/op"), AllocsOp: med("allocs/op")})
	}
	return res
}
