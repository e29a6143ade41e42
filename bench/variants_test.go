package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/credproxy/credproxy/proxy
BenchmarkReverseScanSize/size=1KiB/scan=true-2         	    5000	    200000 ns/op	   5.12 MB/s	       130.0 p50-us	       400.0 p99-us	   14275 B/op	     157 allocs/op
BenchmarkReverseScanSize/size=1KiB/scan=true-2         	    5000	    240000 ns/op	   4.27 MB/s	       140.0 p50-us	       400.0 p99-us	   14275 B/op	     157 allocs/op
BenchmarkReverseScanSize/size=1KiB/scan=true-2         	    5000	    220000 ns/op	   4.65 MB/s	       135.0 p50-us	       400.0 p99-us	   14275 B/op	     157 allocs/op
BenchmarkReverseScanSize/size=1KiB/scan=false-2        	    5000	    190000 ns/op	   5.39 MB/s	       117.0 p50-us	       300.0 p99-us	   14124 B/op	     157 allocs/op
BenchmarkBrowserGuard/on/no-origin                     	20000000	        54.0 ns/op	       0 B/op	       0 allocs/op
PASS
`

func TestParseGoBench(t *testing.T) {
	got := parseGoBench(goBenchOutput)
	if len(got) != 3 {
		t.Fatalf("parseGoBench: %d benchmarks, want 3: %+v", len(got), got)
	}
	g := got[0]
	if g.Name != "BenchmarkReverseScanSize/size=1KiB/scan=true" || g.Runs != 3 || g.NsOp != 220000 || g.NsMin != 200000 || g.NsMax != 240000 || g.P50us != 135 || g.AllocsOp != 157 {
		t.Errorf("first benchmark = %+v", g)
	}
	if got[2].Name != "BenchmarkBrowserGuard/on/no-origin" || got[2].NsOp != 54 {
		t.Errorf("a benchmark without a -N suffix = %+v", got[2])
	}
}

func TestStartedWith(t *testing.T) {
	log := filepath.Join(t.TempDir(), "credproxy.log")
	line := `{"level":"info","msg":"credproxy starting","routes":1,"runtime":{"gogc":200},"gomaxprocs":1,"gomaxprocs_why":"every listener on loopback or a unix socket (a sidecar)"}`
	if err := os.WriteFile(log, []byte(`{"level":"warn","msg":"x"}`+"\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, why, err := startedWith(log)
	if err != nil || n != 1 || !strings.Contains(why, "sidecar") {
		t.Errorf("startedWith = %d, %q, %v", n, why, err)
	}
	_ = os.WriteFile(log, []byte(`{"level":"warn","msg":"x"}`+"\n"), 0o600)
	if _, _, err := startedWith(log); err == nil {
		t.Error("startedWith found a start line in a log without one")
	}
}

// TestFeaturesRenders: the features section states the budget verdicts
// at 32 connections against the baseline, and the in-process prices.
func TestFeaturesRenders(t *testing.T) {
	r := &variantReport{Set: "features", FullRun: true, Rounds: 3, Duration: time.Second, Load: "1", LoadEnd: "2"}
	for _, n := range []int{1, 32} {
		r.Rows = append(r.Rows,
			variantRow{Variant: featureBase, Conns: n, GOMAXPROCS: 1, Result: result{RPS: 100, CPU: 100 * time.Microsecond}, CPUMin: 95 * time.Microsecond, CPUMax: 110 * time.Microsecond},
			variantRow{Variant: "client keys", Conns: n, GOMAXPROCS: 1, Budget: 0.05, Gate: "keys", Result: result{RPS: 100, CPU: 104 * time.Microsecond}, CPUMin: 100 * time.Microsecond, CPUMax: 108 * time.Microsecond},
			variantRow{Variant: "request policy", Conns: n, GOMAXPROCS: 1, Budget: 0.05, Gate: "policy", Result: result{RPS: 100, CPU: 108 * time.Microsecond}, CPUMin: 100 * time.Microsecond, CPUMax: 112 * time.Microsecond},
			variantRow{Variant: "audit log", Conns: n, GOMAXPROCS: 1, Budget: 0.10, Gate: "audit", Result: result{RPS: 100, CPU: 120 * time.Microsecond}, CPUMin: 118 * time.Microsecond, CPUMax: 125 * time.Microsecond},
			variantRow{Variant: unixBase, Conns: n, Base: unixBase, Result: result{RPS: 50, CPU: 80 * time.Microsecond}},
			variantRow{Variant: "peer identity", Conns: n, Base: unixBase, Result: result{RPS: 50, CPU: 88 * time.Microsecond}})
	}
	r.InProcess = parseGoBench(goBenchOutput)
	r.InProcess = append(r.InProcess, goBench{Name: "BenchmarkBrowserGuard/off", NsOp: 7, NsMin: 6, NsMax: 8},
		goBench{Name: "BenchmarkGate/off", NsOp: 4, NsMin: 4, NsMax: 5},
		goBench{Name: "BenchmarkGate/keys", NsOp: 1304, NsMin: 1250, NsMax: 1400, AllocsOp: 8},
		goBench{Name: "BenchmarkGate/audit", NsOp: 1204, NsMin: 1200, NsMax: 1300, AllocsOp: 4})
	md := r.markdown()
	for _, want := range []string{
		"`go run ./bench` (after the contenders)",
		// Ranges overlap, the gate's cost measured: the verdict is read
		// from the in-process share (1.3 µs of 100 µs).
		"| client keys | <= +5% | +4.0%: 104 µs (100-108) vs 100 µs (95-110) | +1.3 µs a request (1.2 µs-1.4 µs), +1.3%, 8 allocs | met (from the in-process cost",
		// Ranges overlap, no in-process figure: the end-to-end median
		// decides, and says it is noise.
		"| request policy | <= +5% | +8.0%: 108 µs (100-112) vs 100 µs (95-110) | not measured | **not met** (the rounds' ranges overlap",
		// Ranges apart: a real difference, read end to end even though
		// the in-process cost is small.
		"| audit log | <= +10% | +20.0%: 120 µs (118-125) vs 100 µs (95-110) | +1.2 µs a request (1.2 µs-1.3 µs), +1.2%, 4 allocs | **not met** (end to end) |",
		"| 32 | peer identity | 0 | 50 | 1.00 | 0 µs | 0 µs | 88 µs | 0-0 | 1.10 |",
		"- browser guard, request without Origin: +47 ns a request on against off",
		"0.05% of the baseline's CPU per request at one connection (100 µs)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("features section lacks %q:\n%s", want, md)
		}
	}
}
