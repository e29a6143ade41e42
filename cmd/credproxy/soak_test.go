package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// Soak parameters. CI sets CREDPROXY_SOAK_DURATION=60s (.ci/run); without
// it the soak runs for defaultSoak so that every `go test` still covers a
// few renewals. A long soak: CREDPROXY_SOAK_DURATION=1h go test -run TestSoak -timeout 0 ./cmd/credproxy/
const (
	defaultSoak = 10 * time.Second
	soakRate    = 500 // requests per second, half reverse, half forward
	soakTTL     = 5 * time.Second
	soakWorkers = 32
)

// TestSoak runs the built binary in reverse and forward mode for the soak
// duration at about 500 requests/s, against a fake CSP issuing 5 s tokens
// and an API that rejects any token past its expiry. No request may fail,
// none may reach the API with an expired token, renewals keep pace with
// the lifetime, and the process's goroutines and heap do not grow.
func TestSoak(t *testing.T) {
	duration := defaultSoak
	if s := os.Getenv("CREDPROXY_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CREDPROXY_SOAK_DURATION=%q: want a positive Go duration such as 60s", s)
		}
		duration = d
	}
	const apiToken = "soakApiT0ken-4c2e-91ab"
	fk := startFakes(t, demo.CSPOptions{APIToken: apiToken, TTL: soakTTL})
	csp, cspURL, echo, echoURL, certFile := fk.csp, fk.cspURL, fk.echo, fk.echoURL, fk.certFile
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, onLoopback...))
	addrs := p.listeners(t, 3)
	admin := addrs["admin"]
	waitReady(t, admin)
	idle := readGauges(t, admin)

	revTr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer revTr.CloseIdleConnections()
	clients := []struct {
		client *http.Client
		base   string
	}{
		{&http.Client{Transport: revTr, Timeout: 30 * time.Second}, "http://" + addrs["route default"]},
		{forwardClient(t, admin, addrs["forward"]), echoURL},
	}
	clients[1].client.Timeout = 30 * time.Second
	exchanges0 := csp.Exchanges()

	var sent, failed atomic.Int64
	var firstFailure sync.Once
	work := make(chan int, soakRate)
	var workers sync.WaitGroup
	for range soakWorkers {
		workers.Go(func() {
			for i := range work {
				c := clients[i%2]
				resp, err := c.client.Get(fmt.Sprintf("%s/api/v2/soak?i=%d", c.base, i))
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					firstFailure.Do(func() { t.Errorf("request %d: %v", i, err) })
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstFailure.Do(func() { t.Errorf("request %d: status %d", i, resp.StatusCode) })
				}
			}
		})
	}

	// Pace the requests; a sample of the process's gauges is taken once
	// the load has settled, and again at the end, under the same load.
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	tick := time.NewTicker(time.Second / soakRate)
	start := time.Now()
	var settled, loaded map[string]float64
	for i := 0; ; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if settled == nil && time.Since(start) > min(duration/4, 15*time.Second) {
			settled = readGauges(t, admin)
		}
		select {
		case work <- i:
		default: // the workers are behind: skip rather than queue
		}
	}
	tick.Stop()
	loaded = readGauges(t, admin)
	close(work)
	workers.Wait()
	elapsed := time.Since(start)
	renewals := csp.Exchanges() - exchanges0

	t.Logf("soak %v: %d requests (%.0f/s), %d failed, %d reached the API with an invalid token, %d renewals (5 s tokens); "+
		"goroutines idle %v, settled %v, end %v; heap in use MiB idle %.1f, settled %.1f, end %.1f",
		elapsed.Round(time.Second), sent.Load(), float64(sent.Load())/elapsed.Seconds(), failed.Load(), echo.Rejected(), renewals,
		idle["go_goroutines"], settled["go_goroutines"], loaded["go_goroutines"],
		idle["go_memstats_heap_inuse_bytes"]/(1<<20), settled["go_memstats_heap_inuse_bytes"]/(1<<20), loaded["go_memstats_heap_inuse_bytes"]/(1<<20))

	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed", failed.Load(), sent.Load())
	}
	if n := echo.Rejected(); n != 0 {
		t.Errorf("%d requests reached the API with an expired or invalid token", n)
	}
	if min := int64(elapsed.Seconds()) * soakRate / 10; sent.Load() < min {
		t.Errorf("only %d requests sent in %v", sent.Load(), elapsed)
	}
	// Renewal at about 2/3 of the lifetime the CSP states (one second
	// short of the TTL): one every 2-5 s.
	lo, hi := int(elapsed/soakTTL)-1, int(elapsed/(2*time.Second))+2
	if renewals < lo || renewals > hi {
		t.Errorf("%d renewals in %v of %v tokens, want %d-%d", renewals, elapsed, soakTTL, lo, hi)
	}
	// Under the same load, the end looks like the settled point: no
	// goroutine leak per request, no heap growth with time.
	if g := loaded["go_goroutines"] - settled["go_goroutines"]; g > 64 {
		t.Errorf("goroutines grew by %v under steady load", g)
	}
	if h := loaded["go_memstats_heap_inuse_bytes"] - settled["go_memstats_heap_inuse_bytes"]; h > 32<<20 {
		t.Errorf("heap in use grew by %.1f MiB under steady load", h/(1<<20))
	}

	// Once the clients close their connections, the process is back to
	// its idle goroutine count, plus the pooled upstream connections:
	// net/http's Transport runs two goroutines for each (its read and
	// write loops) until its idle timeout closes them, and it may hold a
	// few more than there were concurrent clients (a connection dialled
	// for a request that an idle one served first). Counted at the
	// upstream's end.
	revTr.CloseIdleConnections()
	clients[1].client.Transport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g := readGauges(t, admin)["go_goroutines"]
		pooled := fk.echoConnsOpen.Load()
		if g <= idle["go_goroutines"]+2*float64(pooled)+10 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines %v after the clients left, %v before the soak with %d upstream connections pooled", g, idle["go_goroutines"], pooled)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	logtest.AssertNoSecrets(t, "credproxy logs", p.stderr.String(), apiToken)
}

// readGauges reads the Go runtime gauges from credproxy's /metrics.
func readGauges(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := map[string]bool{"go_goroutines": true, "go_memstats_heap_inuse_bytes": true}
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && want[name] {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			got[name] = v
		}
	}
	if len(got) != len(want) {
		t.Fatalf("/metrics lacks the Go runtime gauges: %v", got)
	}
	return got
}
