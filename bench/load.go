package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// result is one measurement: a contender at a number of connections.
type result struct {
	RPS      float64
	P50, P99 time.Duration
	Requests int64
	Errors   int64
	// CPU is the contender's own CPU time per request (user and system,
	// all its processes); zero for the direct baseline.
	CPU time.Duration
}

// runWrk loads url with wrk for d over conns keep-alive connections.
// header, when set, is sent with every request (the direct baseline).
func runWrk(ctx context.Context, url string, conns int, d time.Duration, header string) (result, error) {
	threads := min(conns, 2)
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", "--timeout", "10s"}
	if header != "" {
		args = append(args, "-H", header)
	}
	args = append(args, url)
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkTotal    = regexp.MustCompile(`(?m)^\s+(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`(?m)Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErrs = regexp.MustCompile(`(?m)Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads wrk's --latency report.
func parseWrk(out string) (result, error) {
	var r result
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk: no Requests/sec in output:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if m := wrkSockErrs.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	return r, nil
}

// loadOptions configure the Go load generator used for forward mode,
// which wrk cannot drive (it does not speak CONNECT).
type loadOptions struct {
	URL      string
	Proxy    *url.URL // nil: direct
	TLS      *tls.Config
	Conns    int
	Duration time.Duration
	NewConn  bool   // a new connection (CONNECT and TLS handshake) per request
	Header   string // "Name: value" sent with every request, for the direct baseline
	WarmUp   time.Duration
	Unix     string // when set, connect to this unix socket whatever the URL's host
}

// runLoad runs opt.Conns workers, each with a transport of its own (so one
// client connection per worker, as with wrk), issuing GET opt.URL in a
// loop for opt.Duration. With NewConn every request opens a new
// connection: the cost a single-shot script (curl in a loop) pays.
func runLoad(ctx context.Context, opt loadOptions) (result, error) {
	workers := make([]*loadWorker, opt.Conns)
	var wg sync.WaitGroup
	startAt := make(chan struct{})
	stopAt := make(chan struct{})
	for i := range workers {
		w := &loadWorker{}
		workers[i] = w
		wg.Go(func() { w.run(ctx, opt, startAt, stopAt) })
	}
	time.Sleep(opt.WarmUp + 100*time.Millisecond)
	t0 := time.Now()
	close(startAt)
	select {
	case <-time.After(opt.Duration):
	case <-ctx.Done():
	}
	close(stopAt)
	elapsed := time.Since(t0)
	wg.Wait()
	return summarize(workers, elapsed)
}

// loadWorker is one connection of the load generator: the latencies of
// its requests while measuring, failed requests, and the error that
// stopped it early.
type loadWorker struct {
	lat  []time.Duration
	errs int64
	err  error
}

// run warms up, waits for startAt and issues requests until stopAt.
func (w *loadWorker) run(ctx context.Context, opt loadOptions, startAt, stopAt <-chan struct{}) {
	client, closeIdle := loadClient(opt)
	defer closeIdle()
	req, err := loadRequest(ctx, opt)
	if err != nil {
		w.err = err
		return
	}
	// Warm up: connections open, leaves signed, pools filled.
	warmEnd := time.Now().Add(opt.WarmUp)
	for time.Now().Before(warmEnd) {
		if err := getOK(client, req); err != nil {
			w.err = fmt.Errorf("warm-up: %w", err)
			return
		}
	}
	<-startAt
	w.measure(client, req, stopAt)
}

// measure issues requests back to back until stopAt, recording the
// latency of each that succeeds; after more than 100 failures it gives
// up with the last error.
func (w *loadWorker) measure(client *http.Client, req *http.Request, stopAt <-chan struct{}) {
	w.lat = make([]time.Duration, 0, 1<<14)
	for {
		select {
		case <-stopAt:
			return
		default:
		}
		t0 := time.Now()
		if err := getOK(client, req); err != nil {
			w.errs++
			if w.errs > 100 {
				w.err = err
				return
			}
			continue
		}
		w.lat = append(w.lat, time.Since(t0))
	}
}

// loadClient is a worker's client: one connection at a time, kept alive
// unless opt.NewConn, through opt.Proxy when set. The function returned
// closes its idle connection.
func loadClient(opt loadOptions) (*http.Client, func()) {
	tr := &http.Transport{
		TLSClientConfig:     opt.TLS,
		DisableKeepAlives:   opt.NewConn,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
	}
	if opt.Proxy != nil {
		tr.Proxy = http.ProxyURL(opt.Proxy)
	}
	if opt.Unix != "" {
		tr.DialContext = unixDial(opt.Unix)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr.CloseIdleConnections
}

// loadRequest is the GET every request of a worker repeats, with
// opt.Header when set.
func loadRequest(ctx context.Context, opt loadOptions) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", opt.URL, nil)
	if err != nil {
		return nil, err
	}
	if opt.Header != "" {
		hname, hval, _ := strings.Cut(opt.Header, ":")
		req.Header.Set(hname, strings.TrimSpace(hval))
	}
	return req, nil
}

// getOK sends req, reads the answer to its end and wants a 200.
func getOK(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// summarize merges the workers' latencies into one result over elapsed;
// the first worker error fails the measurement.
func summarize(workers []*loadWorker, elapsed time.Duration) (result, error) {
	var all []time.Duration
	var r result
	for _, w := range workers {
		if w.err != nil {
			return r, w.err
		}
		all = append(all, w.lat...)
		r.Errors += w.errs
	}
	if len(all) == 0 {
		return r, fmt.Errorf("no request completed")
	}
	slices.Sort(all)
	r.Requests = int64(len(all))
	r.RPS = float64(len(all)) / elapsed.Seconds()
	r.P50 = all[len(all)/2]
	r.P99 = all[len(all)*99/100]
	return r, nil
}
