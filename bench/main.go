// Command bench measures credproxy side by side with what users would
// deploy instead, in one run on loopback:
//
//   - reverse mode: a direct TLS call, credproxy, nginx with a static
//     proxy_set_header and HAProxy with http-request set-header, all to the
//     same TLS upstream with keep-alive, at 1, 32 and 256 connections
//     (wrk);
//   - forward mode: credproxy's TLS interception, mitmproxy (mitmdump with
//     an addon that sets the header) and a direct call, with keep-alive
//     and with a new connection per request (a Go load generator, since
//     wrk does not speak CONNECT);
//   - credproxy's memory: RSS idle, at 256 connections and after a million
//     requests;
//   - the token hot path (go test -bench in tokencache);
//   - wide area: the upstream a round trip away (-rtt, through a latency
//     relay), called by a curl loop, a Python requests Session and a Go
//     client, directly and through credproxy (reverse and forward) and
//     nginx (wan.go);
//   - then credproxy alone, in three variant sets (variants.go,
//     variantsets.go): its GOMAXPROCS policy against set values and under
//     cgroup CPU limits, runtime levers (GODEBUG, GOGC), and the price of
//     each optional feature (with the in-process benchmarks of the
//     response body scan and the browser guard);
//   - last, the fleet simulation (virtual time, bench/fleet).
//
// It builds credproxy from this repository and runs the real binary, then
// writes bench/results.md and bench/results.svg. Run it from the
// repository root:
//
//	go run ./bench                          # about 35 minutes on 2 CPUs
//	go run ./bench -duration 2s -rounds 1   # a quicker look
//
// It needs wrk, nginx, haproxy, mitmdump, curl and Python requests
// (Debian: apt-get install -y wrk nginx haproxy mitmproxy curl
// python3-requests), each only for the parts of the run that use it
// (-skip), and says what is missing. Logs and the
// generated configurations are kept in bench/results/ (not committed).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "gomaxprocs-probe" {
		if err := runProbe(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench gomaxprocs-probe:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "upstream" {
		if err := runUpstream(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench upstream:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// benchToken is the static credential every contender injects; the
// upstream answers 401 to anything else.
const benchToken = "bench-static-token-5f2c9a"

// tools are the programs the run needs, the Debian package of each and
// the parts of the run that need it.
var tools = []struct {
	bin, pkg string
	parts    []string
}{
	{"wrk", "wrk", []string{"reverse", "memory", "gomaxprocs", "levers", "features"}},
	{"nginx", "nginx", []string{"reverse", "wan"}},
	{"haproxy", "haproxy", []string{"reverse"}},
	{"mitmdump", "mitmproxy", []string{"forward"}},
	{"curl", "curl", []string{"wan"}},
	{"python3", "python3-requests", []string{"wan"}},
}

// config is the command line.
type config struct {
	duration time.Duration
	conns    []int
	fwdConns []int
	million  int64
	rounds   int
	// extraEnv is added to credproxy's environment (for experiments such
	// as GODEBUG or GOGC settings).
	extraEnv []string
	// skip names parts of the run to leave out: reverse, forward,
	// memory, wan, hot, fleet.
	skip map[string]bool
	// rtt is the wide-area scenario's round trip to the upstream, and
	// wanCalls the calls each of its clients makes on each path.
	rtt      time.Duration
	wanCalls int
	// fleet, when set, runs only the fleet simulation; a full run ends
	// with it too. fleetRoutes is its number of sidecars.
	fleet       bool
	fleetRoutes int
	// render, when set, is a saved report to render instead of a run.
	render string
	// variants, when set, runs only credproxy in a set of variants
	// (gomaxprocs, levers, features; variants.go) and rewrites that
	// section of results.md; limits are the cgroup CPU limits the
	// gomaxprocs set tries.
	variants string
	limits   []string
	// connsSet, durationSet, roundsSet: -conns, -duration, -rounds were
	// given (the variant sets have defaults of their own); dir is the
	// results directory.
	connsSet, durationSet, roundsSet bool
	dir                              string
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	if cfg.render != "" {
		return renderSaved(cfg.render)
	}
	if cfg.fleet {
		return runFleet(ctx, cfg)
	}
	if err := checkTools(cfg.skip); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "bench", "results")
	bin, err := buildCredproxy(ctx, root, dir)
	if err != nil {
		return err
	}
	if cfg.variants != "" {
		return runVariants(ctx, cfg, root, dir, bin)
	}
	return runAll(ctx, cfg, root, dir, bin)
}

// runAll is a full run, or a partial one (-skip): the contenders, then
// credproxy alone in the variant sets, then the fleet simulation; it
// writes results.md and results.svg when nothing was skipped or changed.
func runAll(ctx context.Context, cfg config, root, dir, bin string) error {
	env, err := startAll(ctx, dir, bin, cfg)
	defer env.stopAll()
	if err != nil {
		return err
	}
	rep := &report{Started: time.Now(), Duration: cfg.duration, Rounds: cfg.rounds, Machine: machine(), Load: loadAvg(), Versions: env.versions}
	if rep.RSSIdle, err = rssKiB(env.credproxy.cmd.Process.Pid); err != nil {
		return err
	}
	for _, part := range []struct {
		name string
		run  func() error
	}{
		{"reverse", func() error { return runReverse(ctx, cfg, env, rep) }},
		{"forward", func() error { return runForward(ctx, cfg, env, rep) }},
		{"memory", func() error { return runMemory(ctx, cfg, env, rep) }},
		{"wan", func() error { return runWAN(ctx, cfg, env, rep) }},
		{"hot", func() error { return runHot(ctx, root, rep) }},
	} {
		if cfg.skip[part.name] {
			continue
		}
		if err := part.run(); err != nil {
			return err
		}
	}
	// The contenders stop: the variant sets measure credproxy alone.
	env.stopAll()
	if err := runVariantSets(ctx, cfg, root, dir, bin, rep); err != nil {
		return err
	}
	// The end of the measurements: the fleet simulation after them runs
	// in virtual time, its figures do not depend on the load.
	rep.LoadEnd = loadAvg()
	full := len(cfg.skip) == 0 && len(cfg.extraEnv) == 0
	if full {
		// A partial run writes no results, so it does not simulate.
		if err := simulateFleet(ctx, root, cfg.fleetRoutes); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if !full {
		_ = os.WriteFile(filepath.Join(dir, "report-partial.json"), b, 0o644)
		logf("partial or modified run: results not written (its figures: bench/results/report-partial.json)")
		return nil
	}
	_ = os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644)
	return rep.write(root)
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg config
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of each measurement (the variant sets: 3s unless given)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds of reverse mode and of each variant set; the median is reported")
	conns := fs.String("conns", "1,32,256", "reverse-mode connection counts")
	fwdConns := fs.String("forward-conns", "1,32", "forward-mode connection counts")
	fs.Int64Var(&cfg.million, "requests", 1_000_000, "requests credproxy has served before the 'after N requests' RSS reading")
	fs.Func("env", "KEY=VALUE added to credproxy's environment (repeatable; for experiments)", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want KEY=VALUE")
		}
		cfg.extraEnv = append(cfg.extraEnv, v)
		return nil
	})
	fs.StringVar(&cfg.render, "render", "", "only rewrite results.md and results.svg from a report saved by an earlier run (bench/results/report.json)")
	skip := fs.String("skip", "", "comma list of parts to leave out: reverse, forward, memory, wan, hot, gomaxprocs, levers, features, fleet (results are then not written)")
	fs.DurationVar(&cfg.rtt, "rtt", 60*time.Millisecond, "wide area: round trip between the contenders and the upstream")
	fs.IntVar(&cfg.wanCalls, "wan-calls", 50, "wide area: calls per client and path")
	fs.BoolVar(&cfg.fleet, "fleet", false, "only simulate the fleet (virtual time, a minute or two; a full run ends with it): write bench/fleet.json, bench/fleet.svg and the Fleet section of bench/results.md")
	fs.IntVar(&cfg.fleetRoutes, "fleet-routes", 10000, "fleet: sidecars simulated")
	gmp := fs.Bool("gomaxprocs", false, "only measure credproxy with GOMAXPROCS 1, 2 and unset, and under cgroup CPU limits (-cpu-limits): rewrite the GOMAXPROCS section of bench/results.md")
	levers := fs.Bool("levers", false, "only measure credproxy with runtime settings (GODEBUG, GOGC) one at a time: rewrite the Levers section of bench/results.md")
	features := fs.Bool("features", false, "only measure credproxy with each optional feature on and off: rewrite the Features section of bench/results.md")
	limits := fs.String("cpu-limits", "500m,100m", "-gomaxprocs: cgroup CPU limits (Kubernetes millicores) to run credproxy under, when a cpu cgroup can be made here; empty: none")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	fs.Visit(func(f *flag.Flag) {
		cfg.connsSet = cfg.connsSet || f.Name == "conns"
		cfg.durationSet = cfg.durationSet || f.Name == "duration"
		cfg.roundsSet = cfg.roundsSet || f.Name == "rounds"
	})
	var err error
	if cfg.rounds < 1 {
		return cfg, errors.New("-rounds: at least 1")
	}
	if cfg.rtt < 0 || cfg.wanCalls < 1 || cfg.fleetRoutes < 1 {
		return cfg, errors.New("-rtt: not negative; -wan-calls, -fleet-routes: at least 1")
	}
	if cfg.conns, err = parseInts(*conns); err != nil {
		return cfg, fmt.Errorf("-conns: %w", err)
	}
	if cfg.fwdConns, err = parseInts(*fwdConns); err != nil {
		return cfg, fmt.Errorf("-forward-conns: %w", err)
	}
	for _, v := range []struct {
		on   bool
		name string
	}{{*gmp, "gomaxprocs"}, {*levers, "levers"}, {*features, "features"}} {
		if !v.on {
			continue
		}
		if cfg.variants != "" {
			return cfg, errors.New("-gomaxprocs, -levers and -features: one at a time")
		}
		cfg.variants = v.name
	}
	for _, l := range strings.Split(*limits, ",") {
		if l = strings.TrimSpace(l); l != "" {
			if _, err := parseMillicores(l); err != nil {
				return cfg, fmt.Errorf("-cpu-limits: %w", err)
			}
			cfg.limits = append(cfg.limits, l)
		}
	}
	cfg.skip = map[string]bool{}
	for _, p := range strings.Split(*skip, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.skip[p] = true
		}
	}
	return cfg, nil
}

// renderSaved rewrites results.md and results.svg from a saved report.
func renderSaved(path string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rep := &report{}
	if err := json.Unmarshal(b, rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return rep.write(root)
}

// checkTools says which Debian packages to install when a tool that a
// part of the run not skipped needs is missing.
func checkTools(skip map[string]bool) error {
	var missing []string
	for _, t := range tools {
		if !slices.ContainsFunc(t.parts, func(p string) bool { return !skip[p] }) {
			continue
		}
		_, err := exec.LookPath(t.bin)
		if err == nil && t.bin == "python3" {
			err = exec.Command("python3", "-c", "import requests").Run()
		}
		if err != nil {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools; install them with:\n  sudo apt-get update && sudo apt-get install -y %s", strings.Join(missing, " "))
	}
	return nil
}

// buildGofloor builds ./bench/gofloor, the Go floor, into dir and returns
// the binary's path.
func buildGofloor(ctx context.Context, root, dir string) (string, error) {
	logf("building the Go floor (bench/gofloor)")
	bin := filepath.Join(dir, "gofloor")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/gofloor")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./bench/gofloor: %w\n%s", err, out)
	}
	return bin, nil
}

// buildCredproxy builds ./cmd/credproxy into dir and returns the binary's
// path.
func buildCredproxy(ctx context.Context, root, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	logf("building credproxy")
	bin := filepath.Join(dir, "credproxy")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/credproxy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/credproxy: %w\n%s", err, out)
	}
	return bin, nil
}

// reverseContender is one contender of reverse mode: where wrk sends its
// requests, the header it adds (for the direct baseline) and the
// process whose CPU time is counted.
type reverseContender struct {
	name, url, header string
	p                 *proc
}

// runReverse measures reverse mode with wrk and records the median of the
// rounds in rep.
func runReverse(ctx context.Context, cfg config, env *env, rep *report) error {
	logf("reverse mode")
	contenders := []reverseContender{
		{"direct", env.upURL, "Authorization: Bearer " + benchToken, nil},
		{"credproxy", env.credproxyURL, "", env.credproxy},
		{"nginx", env.nginxURL, "", env.nginx},
		{"haproxy", env.haproxyURL, "", env.haproxy},
		{"gofloor", env.gofloorURL, "", env.gofloor},
		{"gofloor-h1", env.gofloorH1URL, "", env.gofloorH1},
	}
	// Each round measures every contender at every connection count in
	// turn, so that a neighbour's burst of CPU use on a shared machine
	// hits one round of all of them rather than all rounds of one; the
	// tables report the median of the rounds.
	samples := map[int]map[string][]result{}
	for round := 1; round <= cfg.rounds; round++ {
		for _, n := range cfg.conns {
			if samples[n] == nil {
				samples[n] = map[string][]result{}
			}
			for _, c := range contenders {
				r, err := measureReverse(ctx, env, rep, c, n, cfg.duration)
				if err != nil {
					return err
				}
				logf("  round %d %-9s c=%-3d %8.0f req/s  p50 %-8v p99 %-8v CPU/req %v", round, c.name, n, r.RPS, r.P50, r.P99, r.CPU)
				samples[n][c.name] = append(samples[n][c.name], r)
			}
		}
	}
	for _, n := range cfg.conns {
		row := reverseRow{Conns: n, By: map[string]result{}}
		for name, rs := range samples[n] {
			row.By[name] = median(rs)
		}
		rep.Reverse = append(rep.Reverse, row)
	}
	return nil
}

// measureReverse runs wrk once against c at n connections, with the
// contender's CPU time per request and, for credproxy, its peak RSS
// (kept in rep for 256 connections).
func measureReverse(ctx context.Context, env *env, rep *report, c reverseContender, n int, d time.Duration) (result, error) {
	var s *rssSampler
	if c.name == "credproxy" {
		s = sampleRSS(env.credproxy.cmd.Process.Pid)
	}
	cpu0 := c.p.cpu()
	r, err := runWrk(ctx, c.url+"/api/v2/query", n, d, c.header)
	if c.p != nil && r.Requests > 0 {
		r.CPU = (c.p.cpu() - cpu0) / time.Duration(r.Requests)
	}
	if s != nil {
		peak := s.peak()
		if n == 256 {
			rep.RSS256 = max(rep.RSS256, peak)
		}
		logf("  credproxy peak RSS at %d connections: %d KiB", n, peak)
	}
	if err != nil {
		return r, fmt.Errorf("%s at %d connections: %w", c.name, n, err)
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("%s at %d connections: %d errors or non-2xx answers", c.name, n, r.Errors)
	}
	return r, nil
}

// runHot runs the token hot-path benchmarks into rep.
func runHot(ctx context.Context, root string, rep *report) error {
	logf("token hot path")
	var err error
	if rep.Hot, err = tokenHotPath(ctx, root); err != nil {
		return err
	}
	for _, h := range rep.Hot {
		logf("  %s %.2f ns/op %d allocs/op", h.Name, h.NsOp, h.AllocsOp)
	}
	return nil
}

// write writes bench/results.md and bench/results.svg, with the figures
// of the last fleet simulation (bench/fleet.json) as its Fleet section.
func (r *report) write(root string) error {
	var err error
	if r.Fleet, err = loadFleet(root); err != nil {
		return err
	}
	doc := r.markdown()
	// The variant sets' sections: this run's, or (rendering a report
	// saved without them) the ones results.md has.
	old, _ := os.ReadFile(filepath.Join(root, "bench", "results.md"))
	for _, set := range variantSets {
		if vr := r.Variants[set]; vr != nil {
			doc = spliceSection(doc, variantSections[set], vr.markdown())
		} else if sec := extractSection(string(old), variantSections[set]); sec != "" {
			doc = spliceSection(doc, variantSections[set], sec)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bench", "results.md"), []byte(doc), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bench", "results.svg"), []byte(r.svg()), 0o644); err != nil {
		return err
	}
	logf("wrote bench/results.md and bench/results.svg")
	return nil
}

// runForward measures forward mode.
func runForward(ctx context.Context, cfg config, env *env, rep *report) error {
	logf("forward mode")
	upTLS := &tls.Config{RootCAs: env.upPool}
	cpTLS := &tls.Config{RootCAs: env.credproxyCA}
	mitmTLS := &tls.Config{RootCAs: env.mitmCA}
	for _, newConn := range []bool{false, true} {
		for _, n := range cfg.fwdConns {
			row := forwardRow{Conns: n, NewConn: newConn, By: map[string]result{}}
			for _, c := range []struct {
				name  string
				proxy *url.URL
				tls   *tls.Config
				hdr   string
				p     *proc
			}{
				{"direct", nil, upTLS, "Authorization: Bearer " + benchToken, nil},
				{"credproxy", env.credproxyFwd, cpTLS, "", env.credproxy},
				{"mitmproxy", env.mitmFwd, mitmTLS, "", env.mitm},
			} {
				cpu0 := c.p.cpu()
				r, err := runLoad(ctx, loadOptions{URL: env.upURL + "/api/v2/query", Proxy: c.proxy, TLS: c.tls, Conns: n,
					Duration: cfg.duration, NewConn: newConn, Header: c.hdr, WarmUp: time.Second})
				if err != nil {
					return fmt.Errorf("forward %s at %d connections (new connection per request: %v): %w", c.name, n, newConn, err)
				}
				if r.Errors > 0 {
					return fmt.Errorf("forward %s at %d connections: %d errors", c.name, n, r.Errors)
				}
				if c.p != nil && r.Requests > 0 {
					// Includes the warm-up second's requests' CPU: a
					// slight overestimate, the same for both proxies.
					r.CPU = (c.p.cpu() - cpu0) / time.Duration(r.Requests)
				}
				logf("  %-9s c=%-3d new-conn=%-5v %8.0f req/s  p50 %-8v p99 %-8v CPU/req %v", c.name, n, newConn, r.RPS, r.P50, r.P99, r.CPU)
				row.By[c.name] = r
			}
			rep.Forward = append(rep.Forward, row)
		}
	}
	return nil
}

// runMemory tops credproxy up to cfg.million requests served and reads its
// RSS.
func runMemory(ctx context.Context, cfg config, env *env, rep *report) error {
	logf("memory: credproxy RSS after %d requests", cfg.million)
	served, err := env.servedRequests(ctx)
	if err != nil {
		return err
	}
	for served < cfg.million {
		left := cfg.million - served
		rate := max(rep.credproxyRPS(32), 1000)
		secs := max(int(float64(left)/rate)+2, 2)
		if _, err := runWrk(ctx, env.credproxyURL+"/api/v2/query", 32, time.Duration(secs)*time.Second, ""); err != nil {
			return err
		}
		if served, err = env.servedRequests(ctx); err != nil {
			return err
		}
	}
	rep.Served = served
	time.Sleep(time.Second)
	if rep.RSSMillion, err = rssKiB(env.credproxy.cmd.Process.Pid); err != nil {
		return err
	}
	logf("  RSS idle %d KiB, at 256 connections %d KiB, after %d requests %d KiB", rep.RSSIdle, rep.RSS256, served, rep.RSSMillion)
	return nil
}

// median returns the median of each figure of rs.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	var total int64
	for _, r := range rs {
		total += r.Requests
	}
	return result{
		RPS:      pick(func(r result) float64 { return r.RPS }),
		P50:      time.Duration(pick(func(r result) float64 { return float64(r.P50) })),
		P99:      time.Duration(pick(func(r result) float64 { return float64(r.P99) })),
		CPU:      time.Duration(pick(func(r result) float64 { return float64(r.CPU) })),
		Requests: total,
	}
}

// env is the running set of processes and their addresses.
type env struct {
	procs     []*proc
	dir, bin  string // where logs and configurations go; credproxy's binary
	upstream  *proc
	credproxy *proc
	nginx     *proc
	haproxy   *proc
	mitm      *proc
	// gofloor and gofloorH1 are the Go floor (bench/gofloor), speaking
	// HTTP/2 (net/http's default) and HTTP/1.1 to the upstream.
	gofloor, gofloorH1 *proc
	versions           map[string]string

	gofloorURL, gofloorH1URL string

	upURL, credproxyURL, nginxURL, haproxyURL string
	adminURL                                  string
	credproxyFwd, mitmFwd                     *url.URL
	upPool, credproxyCA, mitmCA               *x509.CertPool
}

// stopAll stops every process started, last first; a second call does
// nothing.
func (e *env) stopAll() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop()
	}
	e.procs = nil
}

// ports are the loopback ports of the upstream and the contenders'
// listeners.
type ports struct {
	up, credproxy, fwd, admin, nginx, haproxy, mitm, gofloor, gofloorH1 int
}

// freePorts picks a free loopback port for each listener.
func freePorts() (ports, error) {
	var p ports
	for _, f := range []*int{&p.up, &p.credproxy, &p.fwd, &p.admin, &p.nginx, &p.haproxy, &p.mitm, &p.gofloor, &p.gofloorH1} {
		var err error
		if *f, err = freePort(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// add records a started process so that stopAll ends it.
func (e *env) add(p *proc, err error) (*proc, error) {
	if p != nil {
		e.procs = append(e.procs, p)
	}
	return p, err
}

// newEnv writes the upstream's test PKI into dir and returns an env
// that trusts its CA, with nothing started yet.
func newEnv(dir, bin string) (*env, error) {
	e := &env{dir: dir, bin: bin, versions: map[string]string{}}
	if err := writeUpstreamPKI(dir); err != nil {
		return e, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return e, err
	}
	e.upPool = x509.NewCertPool()
	e.upPool.AppendCertsFromPEM(caPEM)
	return e, nil
}

// startAll starts the upstream and the contenders of the parts not
// skipped, and waits until each answers a request with the credential
// the upstream expects. (The wide-area part starts its own.)
func startAll(ctx context.Context, dir, bin string, cfg config) (*env, error) {
	e, err := newEnv(dir, bin)
	if err != nil {
		return e, err
	}
	p, err := freePorts()
	if err != nil {
		return e, err
	}
	steps := []struct {
		part  string // "" for every run
		start func() error
	}{
		{"", func() error { return e.startUpstream(ctx, dir, p.up) }},
		{"", func() error { return e.startCredproxy(ctx, dir, bin, p, cfg.extraEnv) }},
		{"reverse", func() error { return e.startNginx(ctx, dir, p.nginx, p.up) }},
		{"reverse", func() error { return e.startHAProxy(ctx, dir, p.haproxy, p.up) }},
		{"reverse", func() error { return e.startGofloor(ctx, dir, p.gofloor, p.gofloorH1) }},
		{"forward", func() error { return e.startMitmdump(ctx, dir, p.mitm, p.up) }},
	}
	for _, step := range steps {
		if cfg.skip[step.part] {
			continue
		}
		if err := step.start(); err != nil {
			return e, err
		}
	}
	e.versions["wrk"] = firstLine(exec.Command("wrk", "-v").CombinedOutput())
	e.versions["go"] = runtime.Version()
	return e, nil
}

// startUpstream starts the TLS upstream (this program, re-executed as
// "bench upstream") and waits until it answers 200 to the credential.
func (e *env) startUpstream(ctx context.Context, dir string, port int) error {
	logf("starting the TLS upstream")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if e.upstream, err = e.add(start(dir, "upstream", nil, self, "upstream", dir, strconv.Itoa(port), benchToken)); err != nil {
		return err
	}
	e.upURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	return waitUpstream(ctx, e.upstream, e.upURL+"/", e.upPool)
}

// waitUpstream polls the upstream at u with the credential until it
// answers 200, for up to 10 s.
func waitUpstream(ctx context.Context, up *proc, u string, pool *x509.CertPool) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+benchToken)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("upstream not ready: %w\n%s", err, up.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startCredproxy starts credproxy with its reverse listener and forward
// proxy, fetches its forward-proxy CA and waits until both modes answer.
func (e *env) startCredproxy(ctx context.Context, dir, bin string, p ports, extraEnv []string) error {
	logf("starting credproxy")
	var err error
	if e.credproxy, err = e.add(start(dir, "credproxy", append(credproxyEnv(dir, p.credproxy, p.fwd, p.admin, p.up, benchToken), extraEnv...), bin, "run")); err != nil {
		return err
	}
	e.credproxyURL = fmt.Sprintf("http://127.0.0.1:%d", p.credproxy)
	e.adminURL = fmt.Sprintf("http://127.0.0.1:%d", p.admin)
	e.credproxyFwd = &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", p.fwd)}
	if err := waitOK(ctx, e.credproxy, e.adminURL+"/readyz", nil, nil); err != nil {
		return err
	}
	if _, e.credproxyCA, err = fetchCA(e.adminURL + "/ca.pem"); err != nil {
		return err
	}
	if err := waitOK(ctx, e.credproxy, e.credproxyURL+"/", nil, nil); err != nil {
		return err
	}
	if err := waitOK(ctx, e.credproxy, e.upURL+"/", http.ProxyURL(e.credproxyFwd), &tls.Config{RootCAs: e.credproxyCA}); err != nil {
		return err
	}
	e.versions["credproxy"] = firstLine(exec.Command(bin, "version").Output())
	return nil
}

// fetchCA reads credproxy's forward-proxy CA from its admin listener, as
// PEM and as a pool.
func fetchCA(u string) ([]byte, *x509.CertPool, error) {
	caResp, err := http.Get(u)
	if err != nil {
		return nil, nil, err
	}
	cpCA, _ := io.ReadAll(caResp.Body)
	caResp.Body.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cpCA) {
		return nil, nil, errors.New("credproxy /ca.pem: no certificate")
	}
	return cpCA, pool, nil
}

// startNginx starts nginx in front of the upstream.
func (e *env) startNginx(ctx context.Context, dir string, port, upPort int) error {
	logf("starting nginx")
	var err error
	if e.nginx, err = runNginx(ctx, dir, port, upPort, e.add); err != nil {
		return err
	}
	e.nginxURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	e.versions["nginx"] = firstLine(exec.Command("nginx", "-v").CombinedOutput())
	return nil
}

// runNginx writes dir/nginx.conf (its pid file, logs and temporary
// directories in dir too), starts nginx on port in front of upPort,
// records the process with add and waits until it answers.
func runNginx(ctx context.Context, dir string, port, upPort int, add func(*proc, error) (*proc, error)) (*proc, error) {
	nconf, err := writeFile(dir, "nginx.conf", nginxConf(dir, port, upPort, benchToken))
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"} {
		_ = os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	p, err := add(start(dir, "nginx", nil, "nginx", "-e", filepath.Join(dir, "nginx-error.log"), "-p", dir, "-c", nconf))
	if err != nil {
		return nil, err
	}
	return p, waitOK(ctx, p, fmt.Sprintf("http://127.0.0.1:%d/", port), nil, nil)
}

// startHAProxy writes haproxy.cfg and starts HAProxy in front of the
// upstream.
func (e *env) startHAProxy(ctx context.Context, dir string, port, upPort int) error {
	logf("starting HAProxy")
	hconf, err := writeFile(dir, "haproxy.cfg", haproxyConf(dir, port, upPort, benchToken))
	if err != nil {
		return err
	}
	e.haproxy, err = e.add(start(dir, "haproxy", nil, "haproxy", "-db", "-f", hconf))
	if err != nil {
		return err
	}
	e.haproxyURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitOK(ctx, e.haproxy, e.haproxyURL+"/", nil, nil); err != nil {
		return err
	}
	e.versions["haproxy"] = firstLine(exec.Command("haproxy", "-v").CombinedOutput())
	return nil
}

// startGofloor builds the Go floor and starts it twice in front of the
// upstream: with net/http's default transport (HTTP/2 to this upstream)
// and with -http1.
func (e *env) startGofloor(ctx context.Context, dir string, port, portH1 int) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	bin, err := buildGofloor(ctx, root, dir)
	if err != nil {
		return err
	}
	logf("starting the Go floor")
	for _, g := range []struct {
		name string
		port int
		p    **proc
		url  *string
		args []string
	}{
		{"gofloor", port, &e.gofloor, &e.gofloorURL, nil},
		{"gofloor-h1", portH1, &e.gofloorH1, &e.gofloorH1URL, []string{"-http1"}},
	} {
		args := append([]string{"-listen", fmt.Sprintf("127.0.0.1:%d", g.port), "-upstream", e.upURL}, g.args...)
		if *g.p, err = e.add(start(dir, g.name, gofloorEnv(dir, benchToken), bin, args...)); err != nil {
			return err
		}
		*g.url = fmt.Sprintf("http://127.0.0.1:%d", g.port)
		if err := waitOK(ctx, *g.p, *g.url+"/", nil, nil); err != nil {
			return err
		}
	}
	e.versions["gofloor"] = "bench/gofloor, httputil.ReverseProxy, " + runtime.Version()
	return nil
}

// startMitmdump writes the injecting addon, starts mitmdump, waits for
// the CA it generates and until it forwards with the credential.
func (e *env) startMitmdump(ctx context.Context, dir string, port, upPort int) error {
	logf("starting mitmdump")
	addon, err := writeFile(dir, "inject.py", mitmAddon(upPort, benchToken))
	if err != nil {
		return err
	}
	confdir := filepath.Join(dir, "mitmproxy")
	_ = os.RemoveAll(confdir)
	e.mitm, err = e.add(start(dir, "mitmdump", nil, "mitmdump", "-q", "--listen-host", "127.0.0.1", "-p", strconv.Itoa(port),
		"-s", addon, "--set", "confdir="+confdir, "--ssl-insecure"))
	if err != nil {
		return err
	}
	e.mitmFwd = &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}
	if e.mitmCA, err = waitMitmCA(e.mitm, filepath.Join(confdir, "mitmproxy-ca-cert.pem")); err != nil {
		return err
	}
	if err := waitOK(ctx, e.mitm, e.upURL+"/", http.ProxyURL(e.mitmFwd), &tls.Config{RootCAs: e.mitmCA}); err != nil {
		return err
	}
	e.versions["mitmproxy"] = firstLine(exec.Command("mitmdump", "--version").Output())
	return nil
}

// waitMitmCA waits up to 30 s for mitmdump to write its CA certificate at
// caPath.
func waitMitmCA(mitm *proc, caPath string) (*x509.CertPool, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(caPath); err == nil && len(b) > 0 {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(b) {
				return pool, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mitmdump wrote no CA at %s:\n%s", caPath, mitm.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var requestsMetric = regexp.MustCompile(`(?m)^credproxy_requests_total\{[^}]*\} ([0-9.e+]+)$`)

// servedRequests sums credproxy_requests_total from /metrics.
func (e *env) servedRequests(ctx context.Context) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", e.adminURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, m := range requestsMetric.FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return int64(sum), nil
}

// hotResult is one token hot-path benchmark.
type hotResult struct {
	Name     string
	NsOp     float64
	AllocsOp int
}

var benchLine = regexp.MustCompile(`(?m)^(BenchmarkTokenHot\S*)\s+\d+\s+([\d.]+) ns/op\s+\d+ B/op\s+(\d+) allocs/op`)

// tokenHotPath runs tokencache's hot-path benchmarks.
func tokenHotPath(ctx context.Context, root string) ([]hotResult, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "BenchmarkTokenHot", "-benchmem", "-count", "1", "./tokencache")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench tokencache: %w\n%s", err, out)
	}
	var res []hotResult
	for _, m := range benchLine.FindAllStringSubmatch(string(out), -1) {
		ns, _ := strconv.ParseFloat(m[2], 64)
		a, _ := strconv.Atoi(m[3])
		res = append(res, hotResult{Name: strings.TrimSuffix(m[1], "-"+strconv.Itoa(runtime.NumCPU())), NsOp: ns, AllocsOp: a})
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no benchmark results in:\n%s", out)
	}
	return res, nil
}

// repoRoot finds the credproxy module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/credproxy/credproxy\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the credproxy repository")
		}
		dir = parent
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func firstLine(b []byte, _ error) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// machine describes where the run happened.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s/%s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
