package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/server"
	"github.com/credproxy/credproxy/proxy"
)

// demoTTL is the lifetime of the demo's tokens: short, so that a renewal
// shows within the first minute, and a simulated outage outlives a token
// within a minute too.
const demoTTL = 30 * time.Second

// demoAPITokenLife is how long the demo's CSP API token itself has left:
// weeks, so that the status page shows a credential expiry without a
// warning colour, as a healthy deployment's would.
const demoAPITokenLife = 20*24*time.Hour + time.Hour

// demoOutage is the outage the demo suggests: long enough that the token
// held expires during it (at most demoTTL), short enough to watch.
const demoOutage = 60 * time.Second

// runDemo is the embedded default: on loopback, a fake VMware Cloud
// Services issuing 30 s tokens for an API token that expires in about 20
// days, with a control to simulate its outage, an echo API that accepts
// only currently valid tokens, and credproxy between them, configured
// exactly as a user would configure it, through environment variables.
func runDemo(ctx context.Context, env map[string]string, stdout, stderr io.Writer) error {
	hangup, stopHangup := catchHangup()
	defer stopHangup()
	apiToken := randomHex(16)
	csp := demo.NewCSP(demo.CSPOptions{APIToken: apiToken, APITokenExpiresAt: time.Now().Add(demoAPITokenLife), TTL: demoTTL})
	echo := demo.NewEcho(csp.Valid, demo.EchoOptions{})
	cspMux := http.NewServeMux()
	cspMux.Handle(demo.ControlPath, demo.NewControl(csp))
	cspMux.Handle("/", csp)

	cspAddr, stopCSP, err := serveLoopback(cspMux)
	if err != nil {
		return err
	}
	defer stopCSP()
	echoAddr, stopEcho, err := serveLoopback(echo)
	if err != nil {
		return err
	}
	defer stopEcho()

	demoEnv := map[string]string{
		"CREDPROXY_AUTH":                    "csp-api-token",
		"CREDPROXY_CSP_URL":                 "http://" + cspAddr,
		"CREDPROXY_CSP_API_TOKEN":           apiToken,
		"CREDPROXY_UPSTREAM":                "http://" + echoAddr,
		"CREDPROXY_ALLOW_INSECURE_UPSTREAM": "true", // loopback fakes, no TLS
		"CREDPROXY_LISTEN":                  freeOr(env["CREDPROXY_LISTEN"], "127.0.0.1:8080"),
		"CREDPROXY_ADMIN_ADDR":              freeOr(env["CREDPROXY_ADMIN_ADDR"], "127.0.0.1:9901"),
		"CREDPROXY_LOG_FORMAT":              valueOr(env["CREDPROXY_LOG_FORMAT"], "console"),
		"CREDPROXY_LOG_LEVEL":               valueOr(env["CREDPROXY_LOG_LEVEL"], "info"),
		"CREDPROXY_SHUTDOWN_TIMEOUT":        "2s",
	}
	cfg, err := config.Load(demoEnv)
	if err != nil {
		return err
	}
	log, err := server.NewLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	var mu sync.Mutex
	addrs := map[string]string{}
	onListen := func(name, addr string) {
		mu.Lock()
		defer mu.Unlock()
		addrs[name] = addr
		if len(addrs) < 2 {
			return
		}
		printDemoIntro(stdout, cspAddr, echoAddr, addrs["route default"], addrs["admin"])
		go selfCheck(ctx, addrs["route default"], log)
	}
	srv, err := server.New(cfg, server.Options{Logger: log, Hangup: hangup, OnListen: onListen})
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}

// printDemoIntro tells what the demo runs and what to try.
func printDemoIntro(w io.Writer, cspAddr, echoAddr, proxyAddr, adminAddr string) {
	fmt.Fprintf(w, `
credproxy demo: a fake VMware Cloud Services (%s) issues %s tokens to
credproxy for an API token that expires in about %d days; credproxy renews
the tokens ahead of expiry and injects them into calls to an echo API (%s)
that accepts only currently valid tokens.

Try it (no credential in the request: credproxy adds it):
  curl -s http://%s/api/v2/source
  curl -s -H 'Authorization: Bearer forged' http://%s/api/v2/source   # replaced
Watch the token state, the API token's own expiry, and metrics:
  http://%s/            status page, in a browser
  curl -s http://%s/readyz
  curl -s http://%s/metrics | grep ^credproxy_

Simulate an outage of the identity service for %d s:
  curl -s -X POST 'http://%s%s?seconds=%d'
and keep calling the API: the old token is served through the outage until
it expires (within %s), then requests get 503 credential_unavailable
(credproxy fails closed), and once the service is back credproxy recovers
on its own, without a restart. End the outage early with:
  curl -s -X DELETE http://%s%s

Each exchange is logged below; a renewal shows about every 20 s. Ctrl-C stops.

`, cspAddr, demoTTL, int(demoAPITokenLife/(24*time.Hour)), echoAddr, proxyAddr, proxyAddr, adminAddr, adminAddr, adminAddr,
		int(demoOutage/time.Second), cspAddr, demo.ControlPath, int(demoOutage/time.Second), demoTTL, cspAddr, demo.ControlPath)
}

// selfCheck sends one request through the proxy once it is up and logs
// what the echo API said, so the demo shows the whole path working.
func selfCheck(ctx context.Context, proxyAddr string, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+proxyAddr+"/api/v2/self-check", nil)
	if err != nil {
		return
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		log.Warn("demo self-check failed", zap.Error(err))
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	log.Info("demo self-check through the proxy", zap.Int("status", resp.StatusCode), zap.String("echo", strings.TrimSpace(string(body))))
}

// serveLoopback serves h on an ephemeral loopback port.
func serveLoopback(h http.Handler) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := proxy.NewServer(h, zap.NewNop())
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// freeOr returns want (or def when want is empty) if that address can be
// bound now, else an ephemeral loopback port, so that the demo starts even
// where 8080 or 9901 is taken.
func freeOr(want, def string) string {
	addr := valueOr(want, def)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			return "127.0.0.1:0"
		}
		return addr
	}
	ln.Close()
	return addr
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
