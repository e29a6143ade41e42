package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Variants: credproxy alone, started afresh in each of a set of
// configurations (environment, cgroup CPU limit, the header the client
// sends), measured with wrk in rounds that take every variant in turn,
// as reverse mode takes every contender. Three sets (variantsets.go),
// which a full `go run ./bench` measures after the contenders and which
// these flags rerun one at a time:
//
//	go run ./bench -gomaxprocs   # credproxy's GOMAXPROCS policy against set values; under cgroup CPU limits
//	go run ./bench -levers       # runtime settings one at a time (GODEBUG, GOGC)
//	go run ./bench -features     # each optional feature on and off, and two in-process benchmarks
//
// A rerun rewrites its own section of bench/results.md in place; every
// run saves a set's figures in bench/results/<set>.json.

// variantSets are the sets, in the order a full run measures them.
var variantSets = []string{"gomaxprocs", "levers", "features"}

// The variant sets' measurement length and rounds, unless -duration or
// -rounds is given: with these the three sets took 9.7 minutes on 2
// CPUs (gomaxprocs 4.4, levers 2.2, features 3.1).
const (
	variantDuration = 3 * time.Second
	variantRounds   = 3
)

// variant is one way of running credproxy.
type variant struct {
	name string
	// env is added to credproxy's environment (after the bench's own).
	env []string
	// limit is a cgroup CPU limit in Kubernetes notation ("500m"), ""
	// for none.
	limit string
	// header is sent by the client with every request ("Name: value").
	header string
	// files are written into the results directory before the start
	// (name -> content): keys files and the like.
	files map[string]string
	// unix serves the route on a unix socket, loaded by the Go load
	// generator (wrk speaks only TCP): peer identity needs one.
	unix bool
	// wildcard puts the reverse listener on 0.0.0.0 (still loaded over
	// 127.0.0.1): a listener that faces the network.
	wildcard bool
	// base names the variant "x base" compares this one with; "" for
	// the set's first.
	base string
	// budget is the most CPU per request the feature may add to its
	// base at 32 connections (0.05: 5%); 0 for none.
	budget float64
	// gate names the feature's sub-benchmark of edge's BenchmarkGate
	// (its own cost per request, in-process), which the budget verdict
	// reads when the run's rounds cannot tell the difference apart.
	gate string
	// refuse is a request the variant's feature must refuse, and grows
	// a file it must write to: checked after each measurement, so that a
	// feature the binary ignores cannot pass for a cheap one.
	refuse *refusal
	grows  string
}

// refusal is a request that must get a non-2xx answer.
type refusal struct{ path, header string }

// variantRow is the median of a variant's rounds at one connection count.
type variantRow struct {
	Variant string
	Limit   string `json:",omitempty"`
	// GOMAXPROCS is what credproxy ran with, and GOMAXPROCSWhy the
	// reason, from its "credproxy starting" log line.
	GOMAXPROCS    int
	GOMAXPROCSWhy string `json:",omitempty"`
	Conns         int
	Result        result
	// CPUMin and CPUMax are the range of the rounds' CPU per request:
	// the noise of the run.
	CPUMin, CPUMax time.Duration
	// Base is the variant "x base" compares with ("": the first row),
	// Budget the CPU per request the feature may add (0.05: 5%).
	Base   string  `json:",omitempty"`
	Budget float64 `json:",omitempty"`
	// Gate is the feature's BenchmarkGate sub-benchmark ("keys").
	Gate string `json:",omitempty"`
	// Throttled is the share of the cgroup's CFS periods in which it was
	// throttled, and ThrottleRate the time throttled per second of
	// measurement; under a limit only.
	Throttled    float64       `json:",omitempty"`
	ThrottleRate time.Duration `json:",omitempty"`
}

// variantReport is one set's run.
type variantReport struct {
	Set string
	// FullRun: measured by a full `go run ./bench`, not by -<set>.
	FullRun  bool `json:",omitempty"`
	Started  time.Time
	Load     string // load average at the start
	LoadEnd  string // and at the end
	Machine  string
	Duration time.Duration
	Rounds   int
	Cgroup   string // how limits were applied, or why they were not
	Rows     []variantRow
	// Probes is what the runtime picks under each CPU limit (-gomaxprocs).
	Probes []probeRow `json:",omitempty"`
	// Update is how GOMAXPROCS followed a change of the CPU affinity
	// while running (-gomaxprocs).
	Update string `json:",omitempty"`
	// InProcess are the Go benchmarks of the features without a switch
	// in the binary (-features), or why they did not run.
	InProcess    []goBench `json:",omitempty"`
	InProcessErr string    `json:",omitempty"`
	// Failed are the variants that did not start or failed a
	// measurement or a check, with why: left out of the later rounds
	// and the table.
	Failed map[string]string `json:",omitempty"`
}

// probeRow is one GOMAXPROCS probe: the default the runtime picks in a
// cgroup with limit.
type probeRow struct {
	Limit      string
	CPUMax     string // as cpu.max would read
	GOMAXPROCS int
	NumCPU     int
}

var variantSections = map[string]string{
	"gomaxprocs": "## GOMAXPROCS",
	"levers":     "## Runtime levers",
	"features":   "## The price of each feature",
}

// runVariants is -gomaxprocs, -levers or -features: one set, its section
// of results.md rewritten in place.
func runVariants(ctx context.Context, cfg config, root, dir, bin string) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is missing; install it with: sudo apt-get install -y wrk")
	}
	rep, err := measureSet(ctx, cfg, root, dir, bin)
	if err != nil {
		return err
	}
	saveSet(dir, rep)
	md := filepath.Join(root, "bench", "results.md")
	doc, err := os.ReadFile(md)
	if err != nil {
		return err
	}
	if err := os.WriteFile(md, []byte(spliceSection(string(doc), variantSections[cfg.variants], rep.markdown())), 0o644); err != nil {
		return err
	}
	logf("wrote the %q section of bench/results.md (figures in bench/results/%s.json)", variantSections[cfg.variants], cfg.variants)
	return nil
}

// runVariantSets is the variant sets of a full run, after the
// contenders: each set not skipped, into rep.Variants.
func runVariantSets(ctx context.Context, cfg config, root, dir, bin string, rep *report) error {
	for _, set := range variantSets {
		if cfg.skip[set] {
			continue
		}
		c := cfg
		c.variants = set
		vr, err := measureSet(ctx, c, root, dir, bin)
		if err != nil {
			return fmt.Errorf("variant set %s: %w", set, err)
		}
		vr.FullRun = true
		saveSet(dir, vr)
		if rep.Variants == nil {
			rep.Variants = map[string]*variantReport{}
		}
		rep.Variants[set] = vr
	}
	return nil
}

// saveSet writes a set's figures to dir/<set>.json.
func saveSet(dir string, rep *variantReport) {
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, rep.Set+".json"), b, 0o644)
	}
}

// measureSet measures the set cfg.variants: its own TLS upstream, then
// every variant in rounds (and, for features, the in-process benchmarks).
func measureSet(ctx context.Context, cfg config, root, dir, bin string) (*variantReport, error) {
	if !cfg.durationSet {
		cfg.duration = variantDuration
	}
	if !cfg.roundsSet {
		cfg.rounds = variantRounds
	}
	logf("variant set %s: %s per measurement, %d rounds", cfg.variants, cfg.duration, cfg.rounds)
	rep := &variantReport{Set: cfg.variants, Started: time.Now(), Load: loadAvg(), Machine: machine(), Duration: cfg.duration, Rounds: cfg.rounds}
	var cg *cpuCgroup
	if cfg.variants == "gomaxprocs" && len(cfg.limits) > 0 {
		var err error
		if cg, err = newCPUCgroup("credproxy-bench"); err != nil {
			rep.Cgroup = "no CPU limits: " + err.Error()
			logf("gomaxprocs: %s", rep.Cgroup)
			cg = nil
		} else {
			defer cg.remove()
			rep.Cgroup = cg.describe()
		}
	}
	cfg.dir = dir
	vs, conns := variantsFor(cfg.variants, cfg, cg)
	for _, v := range vs {
		for name, content := range v.files {
			if _, err := writeFile(dir, name, content); err != nil {
				return nil, err
			}
		}
	}
	e, err := startVariantUpstream(ctx, dir, bin)
	defer e.stopAll()
	if err != nil {
		return nil, err
	}
	if cfg.variants == "gomaxprocs" {
		if rep.Probes, err = probeLimits(ctx, cg); err != nil {
			return nil, err
		}
		rep.Update = probeUpdate(ctx)
		logf("gomaxprocs: %s", rep.Update)
	}
	s, err := measureRounds(ctx, cfg, e, cg, vs, conns, rep)
	if err != nil {
		return nil, err
	}
	rep.Rows = variantRows(vs, conns, rep.Failed, s)
	e.stopAll()
	if cfg.variants == "features" {
		if rep.InProcess, err = featureBenchmarks(ctx, root); err != nil {
			rep.InProcessErr = err.Error()
			logf("features: in-process benchmarks: %v", err)
		}
	}
	rep.LoadEnd = loadAvg()
	return rep, nil
}

// startVariantUpstream starts a set's TLS upstream.
func startVariantUpstream(ctx context.Context, dir, bin string) (*env, error) {
	e, err := newEnv(dir, bin)
	if err != nil {
		return e, err
	}
	upPort, err := freePort()
	if err != nil {
		return e, err
	}
	return e, e.startUpstream(ctx, dir, upPort)
}

// setSamples are a set's measurements: per variant, what credproxy ran
// with, and per connection count every round's result and throttling.
type setSamples struct {
	procs     map[string]int
	why       map[string]string
	results   map[string]map[int][]result
	throttle  map[string]map[int][]float64
	throttleT map[string]map[int][]time.Duration
}

// measureRounds measures every variant at every connection count, cfg.rounds
// times; a variant that fails is recorded in rep.Failed and skipped after.
func measureRounds(ctx context.Context, cfg config, e *env, cg *cpuCgroup, vs []variant, conns []int, rep *variantReport) (*setSamples, error) {
	s := &setSamples{procs: map[string]int{}, why: map[string]string{}, results: map[string]map[int][]result{},
		throttle: map[string]map[int][]float64{}, throttleT: map[string]map[int][]time.Duration{}}
	rep.Failed = map[string]string{}
	for round := 1; round <= cfg.rounds; round++ {
		for _, v := range vs {
			if _, failed := rep.Failed[v.name]; failed {
				continue
			}
			if s.results[v.name] == nil {
				s.results[v.name], s.throttle[v.name], s.throttleT[v.name] = map[int][]result{}, map[int][]float64{}, map[int][]time.Duration{}
			}
			err := measureVariant(ctx, cfg, e, cg, v, conns, func(procs int, why string) {
				s.procs[v.name], s.why[v.name] = procs, why
			}, func(n int, r result, thr float64, thrT time.Duration) {
				logf("  round %d %-58s c=%-3d %8.0f req/s  p50 %-8v p99 %-8v CPU/req %-8v GOMAXPROCS %d  throttled %.0f%% load %s",
					round, v.name, n, r.RPS, r.P50, r.P99, r.CPU, s.procs[v.name], 100*thr, loadAvg())
				s.results[v.name][n] = append(s.results[v.name][n], r)
				s.throttle[v.name][n] = append(s.throttle[v.name][n], thr)
				s.throttleT[v.name][n] = append(s.throttleT[v.name][n], thrT)
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				why, _, _ := strings.Cut(err.Error(), "\n")
				logf("  %s: not measured: %v", v.name, err)
				rep.Failed[v.name] = why
			}
		}
	}
	return s, nil
}

// variantRows are the report's rows: each variant's median at each
// connection count, with its CPU range and, under a limit, its throttling.
func variantRows(vs []variant, conns []int, failed map[string]string, s *setSamples) []variantRow {
	var out []variantRow
	for _, n := range conns {
		for _, v := range vs {
			if _, failed := failed[v.name]; failed {
				continue
			}
			row := variantRow{Variant: v.name, Limit: v.limit, GOMAXPROCS: s.procs[v.name], GOMAXPROCSWhy: s.why[v.name], Conns: n,
				Result: median(s.results[v.name][n]), Base: v.base, Budget: v.budget, Gate: v.gate}
			for i, r := range s.results[v.name][n] {
				if i == 0 || r.CPU < row.CPUMin {
					row.CPUMin = r.CPU
				}
				row.CPUMax = max(row.CPUMax, r.CPU)
			}
			if v.limit != "" {
				row.Throttled = medianF(s.throttle[v.name][n])
				ts := s.throttleT[v.name][n]
				fs := make([]float64, len(ts))
				for i, t := range ts {
					fs[i] = float64(t)
				}
				row.ThrottleRate = time.Duration(medianF(fs))
			}
			out = append(out, row)
		}
	}
	return out
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	rs := make([]result, len(v))
	for i, f := range v {
		rs[i].RPS = f
	}
	return median(rs).RPS
}

// variantEnv is credproxy's environment for v: the bench's own, at info
// level (for the "credproxy starting" line), with v's listener and
// settings and -env last.
func variantEnv(cfg config, e *env, v variant, p ports, sock string) []string {
	envv := credproxyEnv(e.dir, p.credproxy, p.fwd, p.admin, upPortOf(e.upURL), benchToken)
	envv = append(envv, "CREDPROXY_LOG_LEVEL=info")
	switch {
	case v.unix:
		envv = append(envv, "CREDPROXY_LISTEN=unix:"+sock)
	case v.wildcard:
		envv = append(envv, "CREDPROXY_LISTEN=0.0.0.0:"+strconv.Itoa(p.credproxy))
	}
	envv = append(envv, v.env...)
	return append(envv, cfg.extraEnv...)
}

// measureVariant starts credproxy as v says, warms it up, measures it at
// each of conns, checks that v's feature acted, and stops it; started
// gets the GOMAXPROCS credproxy ran with and why, each measurement goes
// to got.
func measureVariant(ctx context.Context, cfg config, e *env, cg *cpuCgroup, v variant, conns []int,
	started func(procs int, why string), got func(n int, r result, throttled float64, throttleRate time.Duration)) error {
	ports, err := freePorts()
	if err != nil {
		return err
	}
	sock := filepath.Join(e.dir, "credproxy.sock")
	_ = os.Remove(sock)
	if v.grows != "" {
		_ = os.Remove(v.grows)
	}
	bin, args := e.bin, []string{"run"}
	if v.limit != "" {
		if err := cg.setLimit(v.limit); err != nil {
			return err
		}
		bin, args = cg.wrap(bin, args)
	}
	p, err := start(e.dir, "credproxy-variant", variantEnv(cfg, e, v, ports, sock), bin, args...)
	if err != nil {
		return err
	}
	defer p.stop()
	if err := waitOK(ctx, p, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports.admin), nil, nil); err != nil {
		return err
	}
	procs, why, err := startedWith(p.log)
	if err != nil {
		return err
	}
	started(procs, why)
	c := variantClient{url: fmt.Sprintf("http://127.0.0.1:%d", ports.credproxy), sock: sock, v: v}
	// Warm up: pools filled, the heap at its working size.
	if _, err := c.load(ctx, 32, time.Second); err != nil {
		return err
	}
	for _, n := range conns {
		cpu0 := p.cpu()
		st0 := cg.stat(v.limit != "")
		t0 := time.Now()
		r, err := c.load(ctx, n, cfg.duration)
		elapsed := time.Since(t0)
		if err == nil && r.Errors > 0 {
			err = fmt.Errorf("%d errors or non-2xx answers", r.Errors)
		}
		if err != nil {
			return fmt.Errorf("%d connections: %w\n%s", n, err, p.tail())
		}
		if r.Requests > 0 {
			r.CPU = (p.cpu() - cpu0) / time.Duration(r.Requests)
		}
		thr, thrT := throttling(cg, v.limit != "", st0, elapsed)
		got(n, r, thr, thrT)
	}
	return c.check(ctx)
}

// throttling is the share of CFS periods throttled since st0 and the
// time throttled per second of elapsed; zero without a limit.
func throttling(cg *cpuCgroup, limited bool, st0 cgStat, elapsed time.Duration) (float64, time.Duration) {
	if !limited {
		return 0, 0
	}
	st1 := cg.stat(true)
	var thr float64
	if dp := st1.periods - st0.periods; dp > 0 {
		thr = float64(st1.throttled-st0.throttled) / float64(dp)
	}
	return thr, time.Duration(float64(st1.throttledTime-st0.throttledTime) / elapsed.Seconds())
}

// startedWith reads credproxy's "credproxy starting" log line (info
// level) from its log: the GOMAXPROCS it runs with and why.
func startedWith(logPath string) (int, string, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, `"credproxy starting"`) {
			continue
		}
		var m struct {
			Procs *int   `json:"gomaxprocs"`
			Why   string `json:"gomaxprocs_why"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Procs == nil {
			return 0, "", fmt.Errorf("credproxy's start line has no gomaxprocs (%v)", err)
		}
		return *m.Procs, m.Why, nil
	}
	return 0, "", fmt.Errorf("no \"credproxy starting\" line at info level in %s", logPath)
}

// variantClient loads a running variant: wrk over TCP, the Go load
// generator over its unix socket.
type variantClient struct {
	url, sock string
	v         variant
}

func (c variantClient) load(ctx context.Context, n int, d time.Duration) (result, error) {
	if c.v.unix {
		return runLoad(ctx, loadOptions{URL: "http://credproxy/api/v2/query", Unix: c.sock, Conns: n, Duration: d, Header: c.v.header})
	}
	return runWrk(ctx, c.url+"/api/v2/query", n, d, c.v.header)
}

// check makes sure v's feature acted: the request it must refuse is
// refused, the file it must write has grown.
func (c variantClient) check(ctx context.Context) error {
	if c.v.grows != "" {
		if st, err := os.Stat(c.v.grows); err != nil || st.Size() == 0 {
			return fmt.Errorf("check: %s was not written (%v): the feature did not act", c.v.grows, err)
		}
	}
	if c.v.refuse == nil {
		return nil
	}
	tr := &http.Transport{}
	base := c.url
	if c.v.unix {
		tr.DialContext = unixDial(c.sock)
		base = "http://credproxy"
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", base+or(c.v.refuse.path, "/api/v2/query"), nil)
	if err != nil {
		return err
	}
	if name, value, ok := strings.Cut(c.v.refuse.header, ":"); ok {
		req.Header.Set(name, strings.TrimSpace(value))
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 300 {
		return fmt.Errorf("check: %s %q answered %d, not refused: the feature did not act", req.URL.Path, c.v.refuse.header, resp.StatusCode)
	}
	return nil
}

// upPortOf is the port of the upstream's URL.
func upPortOf(u string) int {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(u, "https://"))
	n, _ := strconv.Atoi(port)
	return n
}

// probeGOMAXPROCS starts the harness's probe (bench gomaxprocs-probe) the
// way v starts credproxy, environment and cgroup, and returns the
// GOMAXPROCS the runtime chose.
func probeGOMAXPROCS(ctx context.Context, v variant, cg *cpuCgroup) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	bin, args := self, []string{"gomaxprocs-probe"}
	if v.limit != "" {
		if err := cg.setLimit(v.limit); err != nil {
			return 0, err
		}
		bin, args = cg.wrap(bin, args)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), v.env...)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("gomaxprocs probe: %w", err)
	}
	var procs, ncpu int
	if _, err := fmt.Sscanf(string(out), "GOMAXPROCS=%d NumCPU=%d", &procs, &ncpu); err != nil {
		return 0, fmt.Errorf("gomaxprocs probe said %q", out)
	}
	return procs, nil
}

// probeLimits runs the probe under a range of CPU limits: what Go's
// container-aware default picks for each on this machine.
func probeLimits(ctx context.Context, cg *cpuCgroup) ([]probeRow, error) {
	limits := []string{""}
	if cg != nil {
		limits = []string{"", "100m", "250m", "500m", "1000m", "1500m", "2000m", "2500m", "4000m"}
	}
	var rows []probeRow
	for _, l := range limits {
		env := []string{}
		p, err := probeGOMAXPROCS(ctx, variant{limit: l, env: env}, cg)
		if err != nil {
			return nil, err
		}
		cpuMax := "max 100000"
		if l != "" {
			m, _ := parseMillicores(l)
			cpuMax = fmt.Sprintf("%d 100000", m*100)
		}
		rows = append(rows, probeRow{Limit: l, CPUMax: cpuMax, GOMAXPROCS: p, NumCPU: runtime.NumCPU()})
		logf("gomaxprocs: limit %-6s (cpu.max %q): the runtime picks GOMAXPROCS=%d on %d CPUs", or(l, "none"), cpuMax, p, runtime.NumCPU())
	}
	return rows, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// probeUpdate watches a probe's GOMAXPROCS while its CPU affinity goes
// from all CPUs to CPU 0 and back (taskset -a -p): the runtime's update
// of its default, which a changed cgroup quota goes through as well (on a
// machine of 2 CPUs no quota lowers the default below 2, so the affinity
// stands in for it).
func probeUpdate(ctx context.Context) string {
	if runtime.NumCPU() < 2 {
		return "one CPU: no update to watch"
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return "taskset missing: update not watched"
	}
	self, err := os.Executable()
	if err != nil {
		return err.Error()
	}
	cmd := exec.CommandContext(ctx, self, "gomaxprocs-probe", "-watch", "5s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err.Error()
	}
	if err := cmd.Start(); err != nil {
		return err.Error()
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	all := "0-" + strconv.Itoa(runtime.NumCPU()-1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		_ = exec.Command("taskset", "-a", "-p", "-c", "0", pid).Run()
		time.Sleep(2 * time.Second)
		_ = exec.Command("taskset", "-a", "-p", "-c", all, pid).Run()
	}()
	b := make([]byte, 4096)
	var seen []string
	for {
		n, err := out.Read(b)
		seen = append(seen, strings.Fields(string(b[:n]))...)
		if err != nil {
			break
		}
	}
	_ = cmd.Wait()
	return "affinity all CPUs -> CPU 0 (after 1.5 s) -> all CPUs (after 3.5 s), GOMAXPROCS as the probe saw it change: " + strings.Join(seen, " ")
}

// runProbe is the "gomaxprocs-probe" subcommand: it prints the GOMAXPROCS
// the runtime chose and the CPU count; with -watch D it then prints
// GOMAXPROCS each time it changes, for D.
func runProbe(args []string) error {
	fmt.Printf("GOMAXPROCS=%d NumCPU=%d\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
	if len(args) == 2 && args[0] == "-watch" {
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return err
		}
		start := time.Now()
		last := runtime.GOMAXPROCS(0)
		for time.Since(start) < d {
			time.Sleep(100 * time.Millisecond)
			if p := runtime.GOMAXPROCS(0); p != last {
				fmt.Printf("%.1fs:GOMAXPROCS=%d\n", time.Since(start).Seconds(), p)
				last = p
			}
		}
	}
	return nil
}

// parseMillicores reads a Kubernetes CPU quantity: "500m", "1.5", "2".
func parseMillicores(s string) (int, error) {
	if m, ok := strings.CutSuffix(s, "m"); ok {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("CPU limit %q: want millicores (500m) or cores (1.5)", s)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("CPU limit %q: want millicores (500m) or cores (1.5)", s)
	}
	return int(f * 1000), nil
}

// cpuCgroup is a CPU cgroup the harness made (cgroup v2 cpu.max or v1
// cpu.cfs_quota_us), with a period of 100 ms as Kubernetes sets it.
type cpuCgroup struct {
	dir string
	v2  bool
}

// newCPUCgroup makes a cgroup named name at the root of the CPU
// hierarchy (needs root and a writable cgroup file system).
func newCPUCgroup(name string) (*cpuCgroup, error) {
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if !strings.Contains(" "+strings.TrimSpace(string(b))+" ", " cpu ") {
			return nil, errors.New("cgroup v2 without the cpu controller")
		}
		_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0o644)
		c := &cpuCgroup{dir: filepath.Join("/sys/fs/cgroup", name), v2: true}
		if err := os.Mkdir(c.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(c.dir, "cpu.max")); err != nil {
			c.remove()
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		return c, nil
	}
	for _, root := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
			continue
		}
		c := &cpuCgroup{dir: filepath.Join(root, name)}
		if err := os.Mkdir(c.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(c.dir, "cpu.cfs_period_us"), []byte("100000"), 0o644); err != nil {
			c.remove()
			return nil, err
		}
		return c, nil
	}
	return nil, errors.New("no cgroup CPU controller mounted at /sys/fs/cgroup")
}

func (c *cpuCgroup) describe() string {
	if c.v2 {
		return "cgroup v2, " + c.dir + "/cpu.max"
	}
	return "cgroup v1, " + c.dir + "/cpu.cfs_quota_us (period 100000 µs)"
}

// setLimit sets the quota for limit ("500m": 50 ms per 100 ms period);
// "" removes it.
func (c *cpuCgroup) setLimit(limit string) error {
	if c == nil {
		return errors.New("no cgroup")
	}
	quota := -1
	if limit != "" {
		m, err := parseMillicores(limit)
		if err != nil {
			return err
		}
		quota = m * 100
	}
	if c.v2 {
		v := "max 100000"
		if quota > 0 {
			v = fmt.Sprintf("%d 100000", quota)
		}
		return os.WriteFile(filepath.Join(c.dir, "cpu.max"), []byte(v), 0o644)
	}
	return os.WriteFile(filepath.Join(c.dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0o644)
}

// wrap runs bin in the cgroup: a shell moves itself in, then execs it,
// so the Go runtime finds the limit at start-up as it would in a pod.
func (c *cpuCgroup) wrap(bin string, args []string) (string, []string) {
	return "/bin/sh", append([]string{"-c", `echo $$ > "$1/cgroup.procs" && shift && exec "$@"`, "sh", c.dir, bin}, args...)
}

type cgStat struct{ periods, throttled, throttledTime int64 } // throttledTime in ns

// stat reads cpu.stat; zero when off or unreadable.
func (c *cpuCgroup) stat(on bool) cgStat {
	var s cgStat
	if c == nil || !on {
		return s
	}
	b, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return s
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "nr_periods":
			s.periods = n
		case "nr_throttled":
			s.throttled = n
		case "throttled_time": // v1, ns
			s.throttledTime = n
		case "throttled_usec": // v2
			s.throttledTime = n * 1000
		}
	}
	return s
}

// remove deletes the cgroup once its processes have gone.
func (c *cpuCgroup) remove() {
	if c == nil {
		return
	}
	for range 50 {
		if err := os.Remove(c.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unixTransport dials the unix socket path whatever the URL's host.
func unixDial(path string) func(ctx context.Context, _, _ string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}
