package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/server"
	"github.com/credproxy/credproxy/mitm"
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

// demoTTLVar shortens (or lengthens) the demo's token lifetime, for a
// test that must watch an outage outlive a token within seconds.
const demoTTLVar = "CREDPROXY_DEMO_TOKEN_TTL"

// demoRoute is the demo's route with every way in; demoKeyedRoute the
// one that serves only callers with a client key, and only GET requests.
const (
	demoRoute      = "default"
	demoKeyedRoute = "keyed"
)

// demoSetup is what runDemo prepared before credproxy starts: the fakes'
// addresses, the secrets it made up, and the temporary directory that
// holds the forward proxy's CA certificate and the token sink.
type demoSetup struct {
	ttl     time.Duration
	cspAddr string
	// echoAddr serves the echo API over http, the reverse proxy's
	// upstream; echoTLSAddr serves it over https, for the forward proxy,
	// which goes upstream over https only.
	echoAddr, echoTLSAddr string
	apiToken              string
	clientSecret          string // the local client secret of /oauth2/token
	clientKey             string // the keyed route's client key
	echoKeyedAddr         string // the echo API over http, for the keyed route
	dir                   string // removed at exit
}

// demoAddrs are credproxy's bound listeners, by OnListen name.
type demoAddrs map[string]string

// runDemo is the embedded default: on loopback, a fake VMware Cloud
// Services issuing 30 s tokens for an API token that expires in about 20
// days, with a control to simulate its outage, an echo API that accepts
// only currently valid tokens, and credproxy between them,
// configured exactly as a user would configure it, through environment
// variables, with every way in switched on: the reverse proxy, the
// forward proxy, the token API and /oauth2/token, and a token sink.
func runDemo(ctx context.Context, env map[string]string, stdout, stderr io.Writer) error {
	hangup, stopHangup := catchHangup()
	defer stopHangup()
	d, stop, err := startDemoFakes(env)
	if err != nil {
		return err
	}
	defer stop()
	if err := writeClientKeys(d); err != nil {
		return err
	}
	cfg, err := config.Load(demoEnvironment(env, d))
	if err != nil {
		return err
	}
	log, err := server.NewLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	var mu sync.Mutex
	addrs := demoAddrs{}
	onListen := func(name, addr string) {
		mu.Lock()
		defer mu.Unlock()
		addrs[name] = addr
		if len(addrs) == len(demoListeners) {
			printDemoIntro(stdout, d, addrs)
			go selfCheck(ctx, addrs["route "+demoRoute], log)
		}
	}
	srv, err := server.New(cfg, server.Options{Logger: log, Hangup: hangup, OnListen: onListen})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, "ca.pem"), srv.ForwardCA().CertPEM(), 0o644); err != nil {
		return err
	}
	return srv.Serve(ctx)
}

// demoListeners are the listeners the guide needs, by OnListen name.
var demoListeners = []string{"route " + demoRoute, "route " + demoKeyedRoute, "forward", "admin"}

// startDemoFakes makes the temporary directory and starts the fake CSP
// (plain http: its outage control is curl'ed) and the echo API, over
// http for the reverse proxy and over https for the forward proxy. stop
// stops them and removes the directory.
func startDemoFakes(env map[string]string) (d *demoSetup, stop func(), err error) {
	d = &demoSetup{ttl: demoTTL, apiToken: randomHex(16), clientSecret: randomHex(12), clientKey: randomHex(16)}
	if v := env[demoTTLVar]; v != "" {
		if d.ttl, err = time.ParseDuration(v); err != nil || d.ttl < time.Second {
			return nil, nil, &usageError{demoTTLVar + ": want a duration of 1s or more, e.g. 5s"}
		}
	}
	if d.dir, err = os.MkdirTemp("", "credproxy-demo-"); err != nil {
		return nil, nil, err
	}
	var stops []func()
	stop = func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
		_ = os.RemoveAll(d.dir)
	}
	csp := demo.NewCSP(demo.CSPOptions{APIToken: d.apiToken, APITokenExpiresAt: time.Now().Add(demoAPITokenLife), TTL: d.ttl})
	cspMux := http.NewServeMux()
	cspMux.Handle(demo.ControlPath, demo.NewControl(csp))
	cspMux.Handle("/", csp)
	addr, stopCSP, err := serveLoopback(cspMux, nil)
	if err != nil {
		stop()
		return nil, nil, err
	}
	d.cspAddr, stops = addr, append(stops, stopCSP)
	tlsConf, err := demoUpstreamTLS(d.dir)
	if err != nil {
		stop()
		return nil, nil, err
	}
	echo := demo.NewEcho(csp.Valid, demo.EchoOptions{})
	for _, e := range []struct {
		addr *string
		tls  *tls.Config
	}{{&d.echoAddr, nil}, {&d.echoTLSAddr, tlsConf}, {&d.echoKeyedAddr, nil}} {
		addr, stopEcho, err := serveLoopback(echo, e.tls)
		if err != nil {
			stop()
			return nil, nil, err
		}
		*e.addr, stops = addr, append(stops, stopEcho)
	}
	return d, stop, nil
}

// demoUpstreamTLS is the echo API's TLS: a certificate for 127.0.0.1
// from a CA of the demo's own, which credproxy trusts as a user trusts a
// private CA, through SSL_CERT_DIR (Linux and the BSDs; macOS reads its
// keychain only: there the forward proxy's calls fail, the reverse
// proxy's, over http, work). The CA's directory is the demo's, apart from the
// forward proxy's CA: credproxy must not trust its own CA upstream.
func demoUpstreamTLS(dir string) (*tls.Config, error) {
	ca, err := mitm.NewCAWith(mitm.CAOptions{Name: "credproxy demo echo API CA", Lifetime: 24 * time.Hour, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		return nil, err
	}
	trust := filepath.Join(dir, "upstream-ca")
	if err := os.Mkdir(trust, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(trust, "echo-ca.pem"), ca.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	dirs := trust
	if prev := os.Getenv("SSL_CERT_DIR"); prev != "" {
		dirs += ":" + prev
	}
	if err := os.Setenv("SSL_CERT_DIR", dirs); err != nil {
		return nil, err
	}
	leaves := mitm.NewLeaves(ca, nil)
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return leaves.Get("127.0.0.1")
	}}, nil
}

// demoEnvironment is credproxy's configuration, as a user would write it:
// two routes to the echo API, default (every way in) and keyed (a client
// key and a policy), on the ports of env when set (tests set 0), else the
// documented ones when free, else free ones.
func demoEnvironment(env map[string]string, d *demoSetup) map[string]string {
	e := map[string]string{
		"CREDPROXY_ROUTES":                      demoRoute + "," + demoKeyedRoute,
		"CREDPROXY_ADMIN_ADDR":                  freeOr(env["CREDPROXY_ADMIN_ADDR"], "127.0.0.1:9901"),
		"CREDPROXY_FORWARD_ADDR":                freeOr(env["CREDPROXY_FORWARD_ADDR"], "127.0.0.1:3128"),
		"CREDPROXY_TOKEN_API":                   "true",
		"CREDPROXY_LOG_FORMAT":                  valueOr(env["CREDPROXY_LOG_FORMAT"], "console"),
		"CREDPROXY_LOG_LEVEL":                   valueOr(env["CREDPROXY_LOG_LEVEL"], "info"),
		"CREDPROXY_SHUTDOWN_TIMEOUT":            "2s",
		"CREDPROXY_DEFAULT_LISTEN":              freeOr(env["CREDPROXY_LISTEN"], "127.0.0.1:8080"),
		"CREDPROXY_DEFAULT_UPSTREAM":            "http://" + d.echoAddr,
		"CREDPROXY_DEFAULT_HOSTS":               d.echoTLSAddr, // the forward proxy's way to it
		"CREDPROXY_DEFAULT_TOKEN_SINK_FILE":     filepath.Join(d.dir, "token"),
		"CREDPROXY_DEFAULT_LOCAL_CLIENT_SECRET": d.clientSecret,
		"CREDPROXY_KEYED_LISTEN":                freeOr(env["CREDPROXY_KEYED_LISTEN"], "127.0.0.1:8081"),
		"CREDPROXY_KEYED_UPSTREAM":              "http://" + d.echoKeyedAddr, // a host of its own, for the forward proxy
		"CREDPROXY_KEYED_CLIENT_KEYS_FILE":      filepath.Join(d.dir, "client-keys"),
		"CREDPROXY_KEYED_ALLOW":                 "GET /api/v2/**",
		"CREDPROXY_KEYED_LOCAL_CLIENT_SECRET":   randomHex(12), // not printed: /oauth2/token is default's here
	}
	for _, p := range []string{"CREDPROXY_DEFAULT_", "CREDPROXY_KEYED_"} {
		e[p+"AUTH"] = "csp-api-token"
		e[p+"CSP_URL"] = "http://" + d.cspAddr
		e[p+"CSP_API_TOKEN"] = d.apiToken
		e[p+"ALLOW_INSECURE_UPSTREAM"] = "true" // loopback fakes, plain http
	}
	return e
}

// writeClientKeys writes the keyed route's client keys file: one key,
// named demo.
func writeClientKeys(d *demoSetup) error {
	return os.WriteFile(filepath.Join(d.dir, "client-keys"), []byte("demo:"+d.clientKey+"\n"), 0o600)
}

// printDemoIntro prints the guide: what the demo runs and a command for
// each way in. Every command in it is run by TestDemoGuide.
func printDemoIntro(w io.Writer, d *demoSetup, a demoAddrs) {
	proxyAddr, fwd, admin, keyed := a["route "+demoRoute], "http://"+a["forward"], a["admin"], a["route "+demoKeyedRoute]
	echo, ca := "https://"+d.echoTLSAddr+"/api/v2/source", filepath.Join(d.dir, "ca.pem")
	outage := int(demoOutage / time.Second)
	fmt.Fprintf(w, `
credproxy demo: a fake VMware Cloud Services (%s) issues %s tokens for
an API token that expires in about %d days; credproxy renews them ahead of
expiry and adds them to calls to an echo API (http://%s, and
https://%s) that accepts only currently valid tokens. No command below
sends a credential.

Reverse proxy (a forged credential is replaced):
  curl -s http://%s/api/v2/source
  curl -s -H 'Authorization: Bearer forged' http://%s/api/v2/source
Forward proxy, which intercepts the API's host with a CA of its own:
  curl -s -x %s --cacert %s %s
or, for curl, Python and most tools, paste into a shell:
  export HTTPS_PROXY=%s SSL_CERT_FILE=%s
  curl -s %s
These hand out the token itself, to local clients that must hold it:
  curl -s -H 'Metadata: true' http://%s/v1/token/%s
  curl -s -d grant_type=client_credentials -d client_id=%s -d client_secret=%s http://%s/oauth2/token
  cat %s
(the token API, /oauth2/token with the local client secret, the token sink)
Least privilege: route %s serves only callers with its client key, and
only GET /api/v2/** (CLIENT_KEYS_FILE, ALLOW; a POST gets 403, no key 401):
  curl -s -H 'Authorization: Bearer %s' http://%s/api/v2/source
  curl -s -X POST -H 'Authorization: Bearer %s' http://%s/api/v2/source
  curl -s http://%s/api/v2/source
Watch the token state, the API token's own expiry, and metrics:
  http://%s/            status page, in a browser
  curl -s http://%s/readyz
  curl -s http://%s/metrics | grep ^credproxy_

Simulate an outage of the identity service for %d s:
  curl -s -X POST 'http://%s%s?seconds=%d'
and keep calling the API: the old token is served until it expires (within
%s), then requests get 503 credential_unavailable (credproxy fails closed);
once the service is back credproxy recovers on its own. End it early with:
  curl -s -X DELETE http://%s%s

Each exchange is logged below; a renewal shows about every %s.
Ctrl-C stops the demo and removes %s.

`, d.cspAddr, d.ttl, int(demoAPITokenLife/(24*time.Hour)), d.echoAddr, d.echoTLSAddr,
		proxyAddr, proxyAddr, fwd, ca, echo, fwd, ca, echo,
		admin, demoRoute, demoRoute, d.clientSecret, admin, filepath.Join(d.dir, "token"),
		demoKeyedRoute, d.clientKey, keyed, d.clientKey, keyed, keyed,
		admin, admin, admin,
		outage, d.cspAddr, demo.ControlPath, outage, d.ttl, d.cspAddr, demo.ControlPath,
		renewalEvery(d.ttl), d.dir)
}

// renewalEvery is about how often a token of ttl is renewed: at
// REFRESH_AT's default two thirds of its life.
func renewalEvery(ttl time.Duration) time.Duration {
	return (ttl * 2 / 3).Round(time.Second)
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

// serveLoopback serves h on an ephemeral loopback port, over TLS when
// tlsConf is set.
func serveLoopback(h http.Handler, tlsConf *tls.Config) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
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
