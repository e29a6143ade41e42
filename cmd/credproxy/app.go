package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/credproxy/credproxy/admin"
	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/identity"
	"github.com/credproxy/credproxy/mitm"
	"github.com/credproxy/credproxy/proxy"
	"github.com/credproxy/credproxy/tokencache"
	"github.com/credproxy/credproxy/tokensink"
)

// adminDrainTimeout bounds the admin listener's own shutdown, after the
// routes have drained.
const adminDrainTimeout = 2 * time.Second

// newLogger builds the process logger: JSON (default) or console, on w.
// Sampling is off: an exchange failure must never be dropped.
func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("CREDPROXY_LOG_LEVEL: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl), zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}

// newSource returns the exchange for a route's credential kind.
func newSource(rc config.Route, client *http.Client) (exchange.Source, error) {
	switch rc.Auth {
	case config.KindCSPAPIToken:
		return &exchange.CSPAPIToken{BaseURL: rc.CSPURL, APIToken: rc.CSPAPIToken, Client: client, DefaultTTL: rc.DefaultTTL}, nil
	case config.KindCSPOAuthApp:
		return &exchange.CSPOAuthApp{BaseURL: rc.CSPURL, ClientID: rc.CSPClientID, ClientSecret: rc.CSPClientSecret, OrgID: rc.CSPOrgID, Client: client, DefaultTTL: rc.DefaultTTL}, nil
	case config.KindStatic:
		return &exchange.Static{Token: rc.Static}, nil
	case config.KindSplunkSession:
		return &exchange.SplunkSession{BaseURL: rc.Upstream, Email: rc.SplunkEmail, Password: rc.SplunkPassword, OrgID: rc.SplunkOrgID, Client: client, DefaultTTL: rc.DefaultTTL}, nil
	case config.KindOAuth2ClientCredential:
		return &exchange.OAuth2ClientCredentials{OAuth2Client: oauth2Client(rc, client)}, nil
	case config.KindOAuth2RefreshToken:
		return &exchange.OAuth2RefreshToken{OAuth2Client: oauth2Client(rc, client), RefreshToken: rc.RefreshToken}, nil
	case config.KindOAuth2TokenExchange:
		return &exchange.OAuth2TokenExchange{OAuth2Client: oauth2Client(rc, client), SubjectTokenFile: rc.SubjectTokenFile, SubjectTokenType: rc.SubjectTokenType}, nil
	}
	// config.Load refuses kinds without an exchange; reaching this is a bug.
	return nil, fmt.Errorf("route %s: credential kind %q has no exchange", rc.Name, rc.Auth)
}

func oauth2Client(rc config.Route, client *http.Client) exchange.OAuth2Client {
	return exchange.OAuth2Client{
		TokenURL: rc.TokenURL.String(), ClientID: rc.ClientID, ClientSecret: rc.ClientSecret,
		AuthStyleBody: rc.AuthStyle == config.AuthStyleBody, Scopes: rc.Scopes, Audience: rc.Audience,
		Client: client, DefaultTTL: rc.DefaultTTL,
	}
}

// app is one running credproxy: a cache per route, a reverse listener per
// route that has one, and the admin listener.
type app struct {
	cfg     *config.Config
	log     *zap.Logger
	metrics *proxy.Metrics
	// edge counts the requests the edge's guards refuse.
	edge      *edge.Metrics
	admin     *admin.Admin
	routes    []*liveRoute
	transport *proxy.Transport
	// forward is the forward proxy, nil when CREDPROXY_FORWARD_ADDR is
	// unset. Its CA method gives the CA in use.
	forward *proxy.Forward
	// onListen, when set, is told each listener's bound address (the demo
	// prints them; a port of 0 becomes real here).
	onListen func(name, addr string)
	// hangup delivers the SIGHUPs of the run and demo commands; serve
	// calls reload for each. Nil under exec, whose command gets the
	// signal instead.
	hangup <-chan os.Signal
	// notify tells systemd READY=1 and STOPPING=1 (notify.go); nil
	// unless the run command was started with NOTIFY_SOCKET.
	notify *sdNotifier
	// hup is the SIGHUP renewals under way; serve waits for them.
	hup reloader
}

type liveRoute struct {
	cfg    config.Route
	cache  *tokencache.Cache
	route  *proxy.Route
	expiry *credexpiry.Watcher
	// sink keeps the token in TOKEN_SINK_FILE; nil without one.
	sink *tokensink.Sink
}

// appOptions are what the commands that build an app choose beyond the
// configuration.
type appOptions struct {
	// caLifetime is how long an ephemeral CA lives; zero means
	// runCALifetime. A CA from files keeps its own.
	caLifetime time.Duration
	// authorize, when set, is the forward proxy's caller check
	// (proxy.ForwardOptions.Authorize); exec sets it.
	authorize func(*http.Request) error
	// authRealm is the realm of the forward proxy's 407 challenge.
	authRealm string
}

// newApp builds the app of cfg.
func newApp(cfg *config.Config, opts appOptions, log *zap.Logger) (*app, error) {
	if opts.caLifetime <= 0 {
		opts.caLifetime = runCALifetime
	}
	if err := checkSinkPaths(cfg.Routes); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &app{cfg: cfg, log: log, metrics: proxy.NewMetrics(reg), edge: edge.NewMetrics(reg), transport: proxy.NewTransport(nil)}
	tokenMetrics := admin.NewMetrics(reg)
	client := exchange.NewHTTPClient()
	var statuses []func() tokencache.Status
	for _, rc := range cfg.Routes {
		r, err := newLiveRoute(rc, client, tokenMetrics, log)
		if err != nil {
			return nil, err
		}
		a.routes = append(a.routes, r)
		statuses = append(statuses, r.cache.Status)
	}
	a.admin = admin.New(reg, statuses)
	a.serveAdminPages(log)
	if cfg.ForwardAddr != "" {
		ca, err := loadCA(cfg, opts.caLifetime, log)
		if err != nil {
			return nil, err
		}
		var routes []*proxy.Route
		for _, r := range a.routes {
			routes = append(routes, r.route)
		}
		// Requests the forward proxy carries to a route host are guarded
		// against browsers there, with the target's origin as their own.
		proxied := edge.NewBrowser(a.browserOptions("forward", "", false, true))
		a.forward = proxy.NewForward(routes, a.transport, a.metrics, proxy.ForwardOptions{
			CA: ca, DenyOthers: cfg.ForwardDenyOthers, Guard: proxied.Proxied,
			Authorize: opts.authorize, AuthRealm: opts.authRealm,
			ListenerGuard: func(ln net.Listener, h http.Handler) http.Handler { return a.guard(ln, "forward", "", h) },
		}, log.Named("proxy"))
		a.admin.ServeCA(func() []byte { return a.forward.CA().CertPEM() })
	}
	return a, nil
}

// newLiveRoute builds a route's exchange, its token cache (with its
// metrics) and what the proxy needs of it.
func newLiveRoute(rc config.Route, client *http.Client, m *admin.Metrics, log *zap.Logger) (*liveRoute, error) {
	src, err := newSource(rc, client)
	if err != nil {
		return nil, err
	}
	if rt, ok := src.(*exchange.OAuth2RefreshToken); ok {
		rt.OnRotate = logRotation(rc, log.Named("exchange").With(zap.String("route", rc.Name)))
	}
	sink, onToken := newSink(rc, m, log)
	cache := tokencache.New(src, tokencache.Options{
		Route:           rc.Name,
		Kind:            string(rc.Auth),
		RefreshAt:       rc.RefreshAt,
		ExpiryMargin:    rc.ExpiryMargin,
		TokenWait:       rc.TokenWait,
		ExchangeTimeout: rc.ExchangeTimeout,
		Logger:          log.Named("tokencache"),
		OnExchange:      m.ObserveExchange(rc.Name, string(rc.Auth)),
		OnToken:         onToken,

		OnRenewalSuppressed: m.RenewalSuppressed(rc.Name),
	})
	m.WatchRoute(rc.Name, cache.Status)
	route, err := proxy.NewRoute(proxy.RouteOptions{
		Name:          rc.Name,
		Upstream:      rc.Upstream,
		Hosts:         rc.Hosts,
		Header:        rc.Header,
		Prefix:        rc.HeaderPrefix,
		AllowInsecure: rc.AllowInsecureUpstream,
		Tokens:        cache,
	})
	if err != nil {
		return nil, err
	}
	return &liveRoute{cfg: rc, cache: cache, sink: sink, expiry: newExpiryWatcher(rc, src, m, log), route: route}, nil
}

// logRotation reports a rotated refresh token: written back to its file,
// kept in memory, or kept in memory because writing it failed.
func logRotation(rc config.Route, log *zap.Logger) func(written bool, err error) {
	return func(written bool, err error) {
		switch {
		case err != nil:
			log.Warn("refresh token rotated; kept in memory only, a restart will reuse the old one", zap.String("file", rc.RefreshToken.File), zap.Error(err))
		case written:
			log.Info("refresh token rotated and written back", zap.String("file", rc.RefreshToken.File))
		default:
			log.Info("refresh token rotated; kept in memory (set REFRESH_TOKEN_FILE to persist it)")
		}
	}
}

// serveAdminPages adds the status page, and the token API when it is on.
func (a *app) serveAdminPages(log *zap.Logger) {
	var page []admin.StatusRoute
	var routes []admin.TokenRoute
	for _, r := range a.routes {
		upstream := ""
		if r.cfg.Upstream != nil {
			upstream = r.cfg.Upstream.Redacted()
		}
		page = append(page, admin.StatusRoute{Name: r.cfg.Name, Upstream: upstream, Listen: r.cfg.Listen, Status: r.cache.Status})
		routes = append(routes, admin.TokenRoute{Name: r.cfg.Name, TokenType: r.cfg.HeaderPrefix, Tokens: r.cache, Identity: identityFunc(r.cfg)})
		a.admin.ReportCredentialExpiry(r.cfg.Name, r.expiry.Status)
	}
	a.admin.EnableStatusPage(page)
	if a.cfg.TokenAPI {
		a.admin.EnableTokenAPI(routes, log.Named("admin"))
		a.admin.EnableOAuth2(a.oauth2Routes(), log.Named("admin"))
	}
}

// identityFunc answers a route's identity fingerprints for the token
// API, derived again only when its credential changes.
func identityFunc(rc config.Route) func() (principal, id string, err error) {
	m := identity.NewMemo(rc)
	return func() (string, string, error) {
		fp, err := m.Fingerprints()
		return fp.Principal, fp.Identity, err
	}
}

// Lifetimes of the ephemeral CAs, which no file keeps: the key lives in
// the process's memory only, so a CA certificate that outlives the process
// is trust in a key nobody should hold. Name constraints (routeHosts)
// bound where such a certificate is worth anything; the lifetime bounds
// how long.
const (
	// execCALifetime: exec's command is a script or a job; a day covers
	// it, and its trust files are gone when it ends.
	execCALifetime = 24 * time.Hour
	// runCALifetime: clients of `run` fetch /ca.pem at each start of the
	// process, and processes are restarted (deploys, node upgrades, pod
	// rescheduling) well within a month. Past it, interception fails
	// with an expired CA rather than trusting an old key for ever: a
	// process meant to run longer wants `credproxy ca init` files.
	runCALifetime = 30 * 24 * time.Hour
)

// loadCA loads the configured forward-proxy CA, or makes an ephemeral one
// valid for lifetime, confined to the route hosts, whose certificate is
// served at /ca.pem.
func loadCA(cfg *config.Config, lifetime time.Duration, log *zap.Logger) (*mitm.CA, error) {
	if cfg.CACertFile != "" {
		ca, err := mitm.LoadCA(cfg.CACertFile, cfg.CAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("CREDPROXY_CA_CERT_FILE, CREDPROXY_CA_KEY_FILE: %w", err)
		}
		log.Info("forward-proxy CA loaded", zap.String("subject", ca.Certificate().Subject.String()), zap.String("fingerprint", ca.Fingerprint()))
		return ca, nil
	}
	hosts := routeHosts(cfg.Routes)
	ca, err := mitm.NewCAWith(mitm.CAOptions{
		Name:     "credproxy ephemeral CA " + time.Now().UTC().Format(time.RFC3339),
		Lifetime: lifetime,
		Hosts:    hosts,
	})
	if err != nil {
		return nil, fmt.Errorf("create ephemeral CA: %w", err)
	}
	log.Info("forward-proxy CA created for this process; clients must trust GET /ca.pem from the admin listener",
		zap.Strings("hosts", hosts), zap.Time("not_after", ca.Certificate().NotAfter))
	return ca, nil
}

// routeHosts are the hosts the forward proxy intercepts, without ports:
// each route's UPSTREAM host and its HOSTS.
func routeHosts(routes []config.Route) []string {
	seen := map[string]bool{}
	var hosts []string
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	for _, rc := range routes {
		if rc.Upstream != nil {
			add(strings.ToLower(rc.Upstream.Hostname()))
		}
		for _, h := range rc.Hosts {
			if host, _, err := net.SplitHostPort(h); err == nil {
				h = host
			}
			add(strings.Trim(strings.ToLower(h), "[]"))
		}
	}
	return hosts
}

// listener is a bound listener and the server for it.
type listener struct {
	name string
	ln   net.Listener
	srv  server
}

// server is what serves a listener: an *http.Server, or the forward
// proxy, which also serves the connections it intercepts.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// serve binds every listener, runs until ctx ends, then shuts down along
// the one path of the contract: /readyz fails, in-flight requests drain up
// to the shutdown timeout, the caches stop (ending sessions), the admin
// listener closes.
func (a *app) serve(ctx context.Context) error {
	routeLns, admin, err := a.bind()
	if err != nil {
		return err
	}

	cacheCtx, stopCaches := context.WithCancel(context.WithoutCancel(ctx))
	var caches sync.WaitGroup
	for _, r := range a.routes {
		caches.Go(func() { r.cache.Run(cacheCtx) })
		caches.Go(func() { r.expiry.Run(cacheCtx) })
	}
	a.startSinks(cacheCtx, &caches)

	serveErr := make(chan error, len(routeLns)+1)
	all := routeLns
	if admin != nil {
		all = append(all[:len(all):len(all)], admin)
	}
	if a.forward != nil {
		for _, l := range all {
			a.forward.RefuseSelf(l.ln.Addr())
		}
	}
	for _, l := range all {
		a.log.Info("listening", zap.String("listener", l.name), zap.String("addr", l.ln.Addr().String()))
		if a.onListen != nil {
			a.onListen(l.name, l.ln.Addr().String())
		}
		go func() {
			if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("%s: %w", l.name, err)
			}
		}()
	}

	stopNotify := a.startNotify(ctx)
	runErr := a.wait(ctx, serveErr)
	stopNotify()
	a.shutdown(routeLns, admin, func() { stopCaches(); caches.Wait(); a.hup.wait() })
	return runErr
}

// bind listens on every configured address: the routes' reverse
// listeners and the forward proxy, and the admin listener (nil when its
// address is empty, which only exec sets). On an error nothing stays bound.
func (a *app) bind() (routeLns []*listener, admin *listener, err error) {
	closeAll := func() {
		for _, l := range routeLns {
			l.ln.Close()
		}
	}
	for _, r := range a.routes {
		if r.cfg.Listen == "" {
			continue
		}
		ln, err := net.Listen("tcp", r.cfg.Listen)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("route %s: listen on %s (%sLISTEN): %w", r.cfg.Name, r.cfg.Listen, r.cfg.Prefix, err)
		}
		h := a.guard(ln, "route "+r.cfg.Name, r.cfg.Name, proxy.NewReverse(r.route, a.transport, a.metrics, a.log.Named("proxy")))
		routeLns = append(routeLns, &listener{name: "route " + r.cfg.Name, ln: ln, srv: proxy.NewServer(h, a.log.Named("proxy"))})
	}
	if a.forward != nil {
		ln, err := net.Listen("tcp", a.cfg.ForwardAddr)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("forward proxy: listen on %s (CREDPROXY_FORWARD_ADDR): %w", a.cfg.ForwardAddr, err)
		}
		routeLns = append(routeLns, &listener{name: "forward", ln: ln, srv: a.forward})
	}
	if a.cfg.AdminAddr != "" {
		adminLn, err := net.Listen("tcp", a.cfg.AdminAddr)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("admin: listen on %s (CREDPROXY_ADMIN_ADDR): %w", a.cfg.AdminAddr, err)
		}
		admin = &listener{name: "admin", ln: adminLn, srv: proxy.NewServer(a.guard(adminLn, "admin", "", a.admin), a.log.Named("admin"))}
	}
	return routeLns, admin, nil
}

// guard puts the browser guard in front of the handler of the listener
// ln, named name in logs; route labels its refusals ("" for the admin
// and forward listeners). Whether Host is checked depends on the address
// ln is bound to, which is known only now. The forward listener passes
// proxy requests (CONNECT, absolute form) on: their Host is the target,
// and those to a route host meet the forward proxy's own guard.
func (a *app) guard(ln net.Listener, name, route string, h http.Handler) http.Handler {
	return edge.NewBrowser(a.browserOptions(name, route, edge.IsLoopback(ln.Addr()), name == "forward")).Wrap(h)
}

// browserOptions are the browser guard's options for a listener.
func (a *app) browserOptions(name, route string, loopback, proxyListener bool) edge.BrowserOptions {
	return edge.BrowserOptions{
		Listener: name, Route: route, Loopback: loopback, ProxyListener: proxyListener,
		AllowedHosts: a.cfg.AllowedHosts, AllowedOrigins: a.cfg.AllowedOrigins,
		Log: a.log.Named("edge"), Metrics: a.edge,
	}
}

// wait serves until ctx ends or a listener fails (its error is returned),
// handing each SIGHUP on a.hangup to reload meanwhile.
func (a *app) wait(ctx context.Context, serveErr <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			a.log.Info("shutting down: readiness off, draining requests", zap.Duration("timeout", a.cfg.ShutdownTimeout))
			return nil
		case err := <-serveErr:
			a.log.Error("listener failed; shutting down", zap.Error(err))
			return err
		case <-a.hangup:
			a.reload(ctx)
		}
	}
}

// shutdown fails readiness, drains the route listeners (the forward
// proxy among them) up to the shutdown timeout, then calls stopCaches (which ends
// sessions) and closes the admin listener last.
func (a *app) shutdown(routeLns []*listener, admin *listener, stopCaches func()) {
	a.admin.ShuttingDown()
	drainCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var drained sync.WaitGroup
	for _, l := range routeLns {
		drained.Go(func() {
			if err := l.srv.Shutdown(drainCtx); err != nil {
				a.log.Warn("drain timed out; closing connections", zap.String("listener", l.name), zap.Error(err))
				l.srv.Close()
			}
		})
	}
	drained.Wait()
	stopCaches()
	if admin != nil {
		adminCtx, cancelAdmin := context.WithTimeout(context.Background(), adminDrainTimeout)
		defer cancelAdmin()
		if err := admin.srv.Shutdown(adminCtx); err != nil {
			admin.srv.Close()
		}
	}
	a.log.Info("stopped")
}

// newLoggedApp builds the logger at level, logs the configuration's
// warnings and builds the app. The caller syncs the logger.
func newLoggedApp(cfg *config.Config, level string, opts appOptions, stderr io.Writer) (*app, *zap.Logger, error) {
	log, err := newLogger(level, cfg.LogFormat, stderr)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	a, err := newApp(cfg, opts, log)
	if err != nil {
		_ = log.Sync()
		return nil, nil, err
	}
	return a, log, nil
}

// runProxy is the run command.
func runProxy(ctx context.Context, env map[string]string, stderr io.Writer) error {
	hangup, stopHangup := catchHangup()
	defer stopHangup()
	cfg, err := config.Load(env)
	if err != nil {
		return err
	}
	a, log, err := newLoggedApp(cfg, cfg.LogLevel, appOptions{caLifetime: runCALifetime}, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	a.hangup = hangup
	a.notify = newSDNotifier(env["NOTIFY_SOCKET"], log.Named("systemd")).withWatchdog(env["WATCHDOG_USEC"], env["WATCHDOG_PID"])
	log.Info("credproxy starting", zap.String("version", versionString()), zap.Int("routes", len(cfg.Routes)))
	return a.serve(ctx)
}
