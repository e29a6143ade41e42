package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The wide-area scenario: the upstream is a round trip away (a latency
// relay, relay.go), as a SaaS API is from a cluster. Three clients call
// it, each directly and through three proxies on loopback beside it:
//
//   - a shell script calling curl in a loop: a new process, a new TCP
//     connection and a new TLS handshake per call, as legacy scripts do;
//   - a Python requests Session (keep-alive);
//   - a Go client with keep-alive.
//
// A proxy beside the client turns the client's handshakes into local
// ones and rides a pooled upstream connection over the link, so a call
// pays one round trip instead of three.

// wanPath is one way from a client to the upstream.
type wanPath struct {
	name   string
	url    string
	proxy  *url.URL       // forward proxy, nil for none
	caFile string         // CA bundle for an https URL (curl, Python)
	pool   *x509.CertPool // the same CA, for the Go client
	header string         // the credential, on the direct path only
	proc   *proc          // the proxy, nil for the direct path
}

// wanPaths is the order of the paths in the tables.
var wanPaths = []string{"direct", "credproxy", "credproxy-fwd", "nginx"}

// wanPathNames describe the paths in results.md.
var wanPathNames = map[string]string{
	"direct":        "direct (header set by the client)",
	"credproxy":     "credproxy, reverse listener",
	"credproxy-fwd": "credproxy, forward proxy (HTTPS_PROXY + CA)",
	"nginx":         "nginx, upstream keep-alive",
}

// wanClients is the order of the clients in the tables.
var wanClients = []string{"curl loop", "Python requests", "Go keep-alive"}

// wanSetup is the relay and the proxies that reach the upstream through it.
type wanSetup struct {
	relay *relay
	procs []*proc
	dir   string
	paths []wanPath
}

func (w *wanSetup) stop() {
	for i := len(w.procs) - 1; i >= 0; i-- {
		w.procs[i].stop()
	}
	if w.relay != nil {
		w.relay.close()
	}
}

func (w *wanSetup) add(p *proc, err error) (*proc, error) {
	if p != nil {
		w.procs = append(w.procs, p)
	}
	return p, err
}

// runWAN measures the wide-area scenario into rep.
func runWAN(ctx context.Context, cfg config, e *env, rep *report) error {
	logf("wide area: round trip %v to the upstream, %d calls per client and path", cfg.rtt, cfg.wanCalls)
	w, err := startWAN(ctx, e, cfg.rtt)
	defer w.stop()
	if err != nil {
		return err
	}
	rep.RTT = cfg.rtt
	clients := map[string]func(context.Context, wanPath, int) ([]time.Duration, error){
		"curl loop":       w.curlCalls,
		"Python requests": w.pythonCalls,
		"Go keep-alive":   goCalls,
	}
	for _, client := range wanClients {
		for _, p := range w.paths {
			if err := warmProxy(ctx, p); err != nil {
				return fmt.Errorf("wide area, warming %s: %w", p.name, err)
			}
			ds, err := clients[client](ctx, p, cfg.wanCalls)
			if err != nil {
				return fmt.Errorf("wide area, %s %s: %w", client, p.name, err)
			}
			row := wanRow{Client: client, Path: p.name, Calls: len(ds)}
			row.P50, row.P90 = percentiles(ds)
			logf("  %-15s %-13s median %-9v p90 %v", client, p.name, row.P50.Round(100*time.Microsecond), row.P90.Round(100*time.Microsecond))
			rep.WAN = append(rep.WAN, row)
		}
	}
	rep.Versions["curl"] = firstLine(exec.Command("curl", "--version").Output())
	rep.Versions["python3"] = firstLine(exec.Command("python3", "-c", "import sys, requests; print(sys.version.split()[0], 'requests', requests.__version__)").Output())
	return nil
}

// startWAN starts the relay to the upstream, a credproxy and an nginx of
// their own pointed at it (the main ones stay on the loopback upstream),
// and writes the clients' scripts.
func startWAN(ctx context.Context, e *env, rtt time.Duration) (*wanSetup, error) {
	w := &wanSetup{dir: filepath.Join(e.dir, "wan")}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return w, err
	}
	u, _ := url.Parse(e.upURL)
	var err error
	if w.relay, err = startRelay(u.Host, rtt); err != nil {
		return w, err
	}
	relayURL := "https://" + w.relay.addr()
	_, relayPort, _ := strings.Cut(w.relay.addr(), ":")
	upCA := filepath.Join(w.dir, "ca.pem")
	if err := copyFile(filepath.Join(e.dir, "ca.pem"), upCA); err != nil {
		return w, err
	}
	rp, _ := strconv.Atoi(relayPort)
	cp, err := w.startCredproxy(ctx, e, rp, relayURL)
	if err != nil {
		return w, err
	}
	ng, err := w.startNginx(ctx, rp)
	if err != nil {
		return w, err
	}
	w.paths = []wanPath{
		{name: "direct", url: relayURL, caFile: upCA, pool: e.upPool, header: "Authorization: Bearer " + benchToken},
		cp[0], cp[1], ng,
	}
	for _, s := range []struct{ name, text string }{{"curl-loop.sh", curlLoop}, {"session.py", pythonSession}} {
		if _, err := writeFile(w.dir, s.name, s.text); err != nil {
			return w, err
		}
	}
	return w, nil
}

// startCredproxy starts a credproxy whose route's upstream is the relay,
// and returns its reverse and forward paths.
func (w *wanSetup) startCredproxy(ctx context.Context, e *env, relayPort int, relayURL string) ([]wanPath, error) {
	var ps [3]int
	for i := range ps {
		var err error
		if ps[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	port, fwdPort, adminPort := ps[0], ps[1], ps[2]
	p, err := w.add(start(w.dir, "credproxy", credproxyEnv(w.dir, port, fwdPort, adminPort, relayPort, benchToken), e.bin, "run"))
	if err != nil {
		return nil, err
	}
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	if err := waitOK(ctx, p, admin+"/readyz", nil, nil); err != nil {
		return nil, err
	}
	caPEM, pool, err := fetchCA(admin + "/ca.pem")
	if err != nil {
		return nil, err
	}
	caFile, err := writeFile(w.dir, "credproxy-ca.pem", string(caPEM))
	if err != nil {
		return nil, err
	}
	rev := wanPath{name: "credproxy", url: fmt.Sprintf("http://127.0.0.1:%d", port), proc: p}
	fwd := wanPath{name: "credproxy-fwd", url: relayURL, proxy: &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", fwdPort)},
		caFile: caFile, pool: pool, proc: p}
	for _, path := range []wanPath{rev, fwd} {
		if err := waitOK(ctx, p, path.url+"/", http.ProxyURL(path.proxy), &tls.Config{RootCAs: path.pool}); err != nil {
			return nil, err
		}
	}
	return []wanPath{rev, fwd}, nil
}

// startNginx starts nginx with the bench's configuration, its upstream
// the relay.
func (w *wanSetup) startNginx(ctx context.Context, relayPort int) (wanPath, error) {
	port, err := freePort()
	if err != nil {
		return wanPath{}, err
	}
	p, err := runNginx(ctx, w.dir, port, relayPort, w.add)
	if err != nil {
		return wanPath{}, err
	}
	return wanPath{name: "nginx", url: fmt.Sprintf("http://127.0.0.1:%d", port), proc: p}, nil
}

// warmProxy fills a proxy's upstream pool before a client is measured, as
// a long-running sidecar's is: eight calls, four at a time on new
// connections, so that nginx (one worker, or each of several) holds
// upstream connections too. The direct path is not warmed: its client pays for its
// own connections.
func warmProxy(ctx context.Context, p wanPath) error {
	if p.proc == nil {
		return nil
	}
	client, closeIdle := loadClient(loadOptions{Proxy: p.proxy, TLS: &tls.Config{RootCAs: p.pool}, NewConn: true})
	defer closeIdle()
	for range 2 {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				req, err := loadRequest(ctx, loadOptions{URL: p.url + "/api/v2/query"})
				if err == nil {
					err = getOK(client, req)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// curlLoop is the legacy script: one curl process, and so one connection
// and TLS handshake, per call. It prints each call's start and end
// ($EPOCHREALTIME, seconds): the time includes starting curl, as a
// script's does.
const curlLoop = `#!/bin/bash
# curl-loop.sh N [curl options] URL: calls URL N times, one curl per call.
set -eu
n=$1
shift
for ((i = 0; i < n; i++)); do
	t0=$EPOCHREALTIME
	curl -sS --fail --max-time 10 -o /dev/null "$@"
	t1=$EPOCHREALTIME
	echo "$t0 $t1"
done
`

// curlCalls runs the curl loop on p.
func (w *wanSetup) curlCalls(ctx context.Context, p wanPath, n int) ([]time.Duration, error) {
	args := []string{filepath.Join(w.dir, "curl-loop.sh"), strconv.Itoa(n)}
	if p.caFile != "" {
		args = append(args, "--cacert", p.caFile)
	}
	if p.header != "" {
		args = append(args, "-H", p.header)
	}
	cmd := exec.CommandContext(ctx, "bash", append(args, p.url+"/api/v2/query")...)
	cmd.Env = clientEnv(p.proxy)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("curl loop: %w\n%s", err, stderrOf(err))
	}
	var ds []time.Duration
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("curl loop: bad line %q", line)
		}
		t0, err0 := strconv.ParseFloat(f[0], 64)
		t1, err1 := strconv.ParseFloat(f[1], 64)
		if err0 != nil || err1 != nil {
			return nil, fmt.Errorf("curl loop: bad line %q", line)
		}
		ds = append(ds, time.Duration(math.Round((t1-t0)*1e6))*time.Microsecond)
	}
	return ds, nil
}

// pythonSession is the Python client: one requests Session, its calls
// timed one by one. The environment's proxy settings are ignored
// (trust_env off); the proxy is given explicitly.
const pythonSession = `import argparse, sys, time
import requests

p = argparse.ArgumentParser()
p.add_argument("n", type=int)
p.add_argument("url")
p.add_argument("--proxy")
p.add_argument("--ca")
p.add_argument("--header")
a = p.parse_args()
s = requests.Session()
s.trust_env = False
if a.proxy:
    s.proxies = {"http": a.proxy, "https": a.proxy}
if a.ca:
    s.verify = a.ca
headers = {}
if a.header:
    name, value = a.header.split(":", 1)
    headers[name.strip()] = value.strip()
for _ in range(a.n):
    t0 = time.perf_counter()
    r = s.get(a.url, headers=headers, timeout=10)
    r.content
    t1 = time.perf_counter()
    if r.status_code != 200:
        sys.exit("status %d" % r.status_code)
    print("%.6f" % (t1 - t0))
`

// pythonCalls runs the Python Session on p.
func (w *wanSetup) pythonCalls(ctx context.Context, p wanPath, n int) ([]time.Duration, error) {
	args := []string{filepath.Join(w.dir, "session.py"), strconv.Itoa(n), p.url + "/api/v2/query"}
	if p.proxy != nil {
		args = append(args, "--proxy", p.proxy.String())
	}
	if p.caFile != "" {
		args = append(args, "--ca", p.caFile)
	}
	if p.header != "" {
		args = append(args, "--header", p.header)
	}
	cmd := exec.CommandContext(ctx, "python3", args...)
	cmd.Env = clientEnv(nil)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("python: %w\n%s", err, stderrOf(err))
	}
	var ds []time.Duration
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		s, err := strconv.ParseFloat(strings.TrimSpace(sc.Text()), 64)
		if err != nil {
			return nil, fmt.Errorf("python: bad line %q", sc.Text())
		}
		ds = append(ds, time.Duration(math.Round(s*1e6))*time.Microsecond)
	}
	return ds, nil
}

// goCalls makes n calls on p with one keep-alive Go client.
func goCalls(ctx context.Context, p wanPath, n int) ([]time.Duration, error) {
	client, closeIdle := loadClient(loadOptions{Proxy: p.proxy, TLS: &tls.Config{RootCAs: p.pool}})
	defer closeIdle()
	req, err := loadRequest(ctx, loadOptions{URL: p.url + "/api/v2/query", Header: p.header})
	if err != nil {
		return nil, err
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if err := getOK(client, req); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

// clientEnv is the harness's environment without proxy settings, with
// HTTPS_PROXY set to proxy when given, in the C locale (so that
// $EPOCHREALTIME has a decimal point).
func clientEnv(proxy *url.URL) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "lc_all":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	if proxy != nil {
		env = append(env, "HTTPS_PROXY="+proxy.String())
	}
	return env
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// percentiles returns the median (the mean of the middle two for an even
// count) and the 90th percentile (nearest rank) of ds.
func percentiles(ds []time.Duration) (p50, p90 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	p50 = s[n/2]
	if n%2 == 0 {
		p50 = (s[n/2-1] + s[n/2]) / 2
	}
	return p50, s[int(math.Ceil(0.9*float64(n)))-1]
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}
