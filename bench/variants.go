package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
// as reverse mode takes every contender. Three sets:
//
//	go run ./bench -gomaxprocs   # GOMAXPROCS 1, 2, unset; under cgroup CPU limits
//	go run ./bench -levers       # runtime settings one at a time (GODEBUG, GOGC)
//	go run ./bench -features     # each optional feature on and off
//
// Each rewrites its own section of bench/results.md in place (a full run
// keeps them) and saves its figures in bench/results/<set>.json.

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
}

// variantRow is the median of a variant's rounds at one connection count.
type variantRow struct {
	Variant    string
	Limit      string `json:",omitempty"`
	GOMAXPROCS int    // what the runtime chose, read by a probe started the same way
	Conns      int
	Result     result
	// CPUMin and CPUMax are the range of the rounds' CPU per request:
	// the noise of the run.
	CPUMin, CPUMax time.Duration
	// Throttled is the share of the cgroup's CFS periods in which it was
	// throttled, and ThrottleRate the time throttled per second of
	// measurement; under a limit only.
	Throttled    float64       `json:",omitempty"`
	ThrottleRate time.Duration `json:",omitempty"`
}

// variantReport is one set's run.
type variantReport struct {
	Set      string
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
	// Failed are the variants that did not start or failed a
	// measurement, with why (a feature not wired yet, say): left out of
	// the later rounds and the table.
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

// variantsFor returns the variants of set and the connection counts to
// measure them at (conns unless the flag was left at its default).
func variantsFor(set string, cfg config, cg *cpuCgroup) ([]variant, []int) {
	switch set {
	case "gomaxprocs":
		vs := []variant{
			{name: "GOMAXPROCS=1", env: []string{"GOMAXPROCS=1"}},
			{name: "GOMAXPROCS=2", env: []string{"GOMAXPROCS=2"}},
			{name: "GOMAXPROCS unset (all cores)"},
		}
		if cg != nil {
			for _, l := range cfg.limits {
				vs = append(vs,
					variant{name: "limit " + l + ", GOMAXPROCS unset", limit: l},
					variant{name: "limit " + l + ", GOMAXPROCS=1", limit: l, env: []string{"GOMAXPROCS=1"}})
			}
		}
		return vs, cfg.conns
	case "levers":
		conns := cfg.conns
		if !cfg.connsSet {
			conns = []int{1, 32}
		}
		return []variant{
			{name: "defaults (credproxy: GOGC=200, GOMEMLIMIT=48MiB)"},
			{name: "GOMAXPROCS=1", env: []string{"GOMAXPROCS=1"}},
			{name: "GODEBUG=asyncpreemptoff=1", env: []string{"GODEBUG=asyncpreemptoff=1"}},
			{name: "GODEBUG=updatemaxprocs=0", env: []string{"GODEBUG=updatemaxprocs=0"}},
			{name: "GOGC=400", env: []string{"GOGC=400"}},
			{name: "GOGC=off, GOMEMLIMIT=48MiB", env: []string{"GOGC=off", "GOMEMLIMIT=48MiB"}},
			{name: "GOMAXPROCS=1, GOGC=400", env: []string{"GOMAXPROCS=1", "GOGC=400"}},
		}, conns
	case "features":
		conns := cfg.conns
		if !cfg.connsSet {
			conns = []int{1, 32}
		}
		const key = "ck-bench-3f9a1c2e7d"
		return []variant{
			{name: "baseline"},
			{name: "browser guard, allowed Origin sent (CREDPROXY_ALLOWED_ORIGINS)",
				env: []string{"CREDPROXY_ALLOWED_ORIGINS=https://grafana.example.com"}, header: "Origin: https://grafana.example.com"},
			{name: "client keys (CREDPROXY_CLIENT_KEYS_FILE, 100 keys)",
				env: []string{"CREDPROXY_CLIENT_KEYS_FILE=" + filepath.Join(cfg.dir, "client-keys")}, header: "Authorization: Bearer " + key,
				files: map[string]string{"client-keys": clientKeys(key, 100)}},
			{name: "request policy (CREDPROXY_ALLOW, 3 rules)",
				env: []string{"CREDPROXY_ALLOW=GET /api/v2/**,POST /api/v2/datapoint,GET /api/v1/*/status"}},
			{name: "audit log (CREDPROXY_AUDIT_LOG to a file)",
				env: []string{"CREDPROXY_AUDIT_LOG=" + filepath.Join(cfg.dir, "audit.log")}},
			{name: "unix socket (Go client)", unix: true},
			{name: "unix socket, peer identity (ALLOW_UIDS, Go client)", unix: true,
				env: []string{"CREDPROXY_ALLOW_UIDS=" + strconv.Itoa(os.Getuid())}},
		}, conns
	}
	return nil, nil
}

// clientKeys is a keys file of n keys, key the last.
func clientKeys(key string, n int) string {
	var b strings.Builder
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "client%d:ck-other-%08d\n", i, i)
	}
	fmt.Fprintf(&b, "bench:%s\n", key)
	return b.String()
}

// runVariants is -gomaxprocs, -levers or -features.
func runVariants(ctx context.Context, cfg config, root, dir, bin string) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is missing; install it with: sudo apt-get install -y wrk")
	}
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
				return err
			}
		}
	}

	e := &env{dir: dir, bin: bin, versions: map[string]string{}}
	defer e.stopAll()
	if err := writeUpstreamPKI(dir); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return err
	}
	e.upPool = x509.NewCertPool()
	e.upPool.AppendCertsFromPEM(caPEM)
	upPort, err := freePort()
	if err != nil {
		return err
	}
	if err := e.startUpstream(ctx, dir, upPort); err != nil {
		return err
	}

	if cfg.variants == "gomaxprocs" {
		if rep.Probes, err = probeLimits(ctx, cg); err != nil {
			return err
		}
		rep.Update = probeUpdate(ctx)
		logf("gomaxprocs: %s", rep.Update)
	}

	procs, samples, throttle, throttleT, err := measureRounds(ctx, cfg, e, cg, vs, conns, rep)
	if err != nil {
		return err
	}
	rep.Rows = variantRows(vs, conns, rep.Failed, procs, samples, throttle, throttleT)
	rep.LoadEnd = loadAvg()
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, cfg.variants+".json"), b, 0o644)
	}
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

// measureRounds measures every variant at every connection count, cfg.rounds
// times; a variant that fails is recorded in rep.Failed and skipped after.
func measureRounds(ctx context.Context, cfg config, e *env, cg *cpuCgroup, vs []variant, conns []int, rep *variantReport) (
	procs map[string]int, samples map[string]map[int][]result, throttle map[string]map[int][]float64, throttleT map[string]map[int][]time.Duration, err error) {
	procs, samples = map[string]int{}, map[string]map[int][]result{}
	throttle, throttleT = map[string]map[int][]float64{}, map[string]map[int][]time.Duration{}
	rep.Failed = map[string]string{}
	for round := 1; round <= cfg.rounds; round++ {
		for _, v := range vs {
			if _, failed := rep.Failed[v.name]; failed {
				continue
			}
			if samples[v.name] == nil {
				samples[v.name], throttle[v.name], throttleT[v.name] = map[int][]result{}, map[int][]float64{}, map[int][]time.Duration{}
			}
			if _, ok := procs[v.name]; !ok {
				if procs[v.name], err = probeGOMAXPROCS(ctx, v, cg); err != nil {
					return nil, nil, nil, nil, err
				}
			}
			err := measureVariant(ctx, cfg, e, cg, v, conns, func(n int, r result, thr float64, thrT time.Duration) {
				logf("  round %d %-58s c=%-3d %8.0f req/s  p50 %-8v p99 %-8v CPU/req %-8v GOMAXPROCS %d  throttled %.0f%% load %s",
					round, v.name, n, r.RPS, r.P50, r.P99, r.CPU, procs[v.name], 100*thr, loadAvg())
				samples[v.name][n] = append(samples[v.name][n], r)
				throttle[v.name][n] = append(throttle[v.name][n], thr)
				throttleT[v.name][n] = append(throttleT[v.name][n], thrT)
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil, nil, nil, err
				}
				why, _, _ := strings.Cut(err.Error(), "\n")
				logf("  %s: not measured: %v", v.name, err)
				rep.Failed[v.name] = why
			}
		}
	}
	return procs, samples, throttle, throttleT, nil
}

// variantRows are the report's rows: each variant's median at each
// connection count, with its CPU range and, under a limit, its throttling.
func variantRows(vs []variant, conns []int, failed map[string]string, procs map[string]int, samples map[string]map[int][]result, throttle map[string]map[int][]float64, throttleT map[string]map[int][]time.Duration) []variantRow {
	var out []variantRow
	for _, n := range conns {
		for _, v := range vs {
			if _, failed := failed[v.name]; failed {
				continue
			}
			row := variantRow{Variant: v.name, Limit: v.limit, GOMAXPROCS: procs[v.name], Conns: n, Result: median(samples[v.name][n])}
			for i, s := range samples[v.name][n] {
				if i == 0 || s.CPU < row.CPUMin {
					row.CPUMin = s.CPU
				}
				row.CPUMax = max(row.CPUMax, s.CPU)
			}
			if v.limit != "" {
				row.Throttled = medianF(throttle[v.name][n])
				ts := throttleT[v.name][n]
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

// measureVariant starts credproxy as v says, warms it up, measures it at
// each of conns and stops it; each measurement goes to got.
func measureVariant(ctx context.Context, cfg config, e *env, cg *cpuCgroup, v variant, conns []int, got func(n int, r result, throttled float64, throttleRate time.Duration)) error {
	ports, err := freePorts()
	if err != nil {
		return err
	}
	envv := credproxyEnv(e.dir, ports.credproxy, ports.fwd, ports.admin, upPortOf(e.upURL), benchToken)
	sock := filepath.Join(e.dir, "credproxy.sock")
	if v.unix {
		_ = os.Remove(sock)
		envv = append(envv, "CREDPROXY_LISTEN=unix:"+sock)
	}
	envv = append(envv, v.env...)
	envv = append(envv, cfg.extraEnv...)
	bin, args := e.bin, []string{"run"}
	if v.limit != "" {
		if err := cg.setLimit(v.limit); err != nil {
			return err
		}
		bin, args = cg.wrap(bin, args)
	}
	p, err := start(e.dir, "credproxy-variant", envv, bin, args...)
	if err != nil {
		return err
	}
	defer p.stop()
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", ports.admin)
	if err := waitOK(ctx, p, adminURL+"/readyz", nil, nil); err != nil {
		return err
	}
	target := fmt.Sprintf("http://127.0.0.1:%d/api/v2/query", ports.credproxy)
	measure := func(n int, d time.Duration) (result, error) {
		if v.unix {
			return runLoad(ctx, loadOptions{URL: "http://credproxy/api/v2/query", Unix: sock, Conns: n, Duration: d, Header: v.header})
		}
		return runWrk(ctx, target, n, d, v.header)
	}
	// Warm up: pools filled, the heap at its working size.
	if _, err := measure(32, time.Second); err != nil {
		return err
	}
	for _, n := range conns {
		cpu0 := p.cpu()
		st0 := cg.stat(v.limit != "")
		t0 := time.Now()
		r, err := measure(n, cfg.duration)
		elapsed := time.Since(t0)
		if err != nil {
			return fmt.Errorf("%d connections: %w\n%s", n, err, p.tail())
		}
		if r.Errors > 0 {
			return fmt.Errorf("%d connections: %d errors or non-2xx answers\n%s", n, r.Errors, p.tail())
		}
		if r.Requests > 0 {
			r.CPU = (p.cpu() - cpu0) / time.Duration(r.Requests)
		}
		var thr float64
		var thrT time.Duration
		if v.limit != "" {
			st1 := cg.stat(true)
			if dp := st1.periods - st0.periods; dp > 0 {
				thr = float64(st1.throttled-st0.throttled) / float64(dp)
			}
			thrT = time.Duration(float64(st1.throttledTime-st0.throttledTime) / elapsed.Seconds())
		}
		got(n, r, thr, thrT)
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
