package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/internal/sdnotify"
	"github.com/credproxy/credproxy/mitm"
	"github.com/credproxy/credproxy/proxy"
	"github.com/credproxy/credproxy/tokencache"
	"github.com/credproxy/credproxy/tokensink"
)

// adminDrainTimeout bounds the admin listener's own shutdown, after the
// routes have drained.
const adminDrainTimeout = 2 * time.Second

// Options are what a caller chooses beyond the configuration. The zero
// value of each field means its default.
type Options struct {
	// Logger receives the server's logs, Named per component. Default:
	// no logging.
	Logger *zap.Logger
	// Hangup delivers SIGHUPs: Serve reloads for each (Server.reload).
	// Nil: none (exec, whose command gets the signal instead).
	Hangup <-chan os.Signal
	// Notifier tells systemd READY=1, STOPPING=1 and WATCHDOG=1; nil
	// tells nothing (sdnotify.New gives nil without NOTIFY_SOCKET).
	Notifier *sdnotify.Notifier
	// OnListen, when set, is told each listener's name ("route NAME",
	// "forward", "admin") and bound address (host:port or unix:/path)
	// once it is bound, before it
	// serves: a port of 0 becomes real here. It is called from Serve's
	// goroutine and must not block.
	OnListen func(name, addr string)
	// CALifetime is how long an ephemeral forward-proxy CA lives; zero
	// means RunCALifetime. A CA from files keeps its own.
	CALifetime time.Duration
	// Authorize, when set, is the forward proxy's caller check
	// (proxy.ForwardOptions.Authorize); exec sets it.
	Authorize func(*http.Request) error
	// AuthRealm is the realm of the forward proxy's 407 challenge.
	AuthRealm string
	// Stdout is where CREDPROXY_AUDIT_LOG=stdout writes (nil: os.Stdout).
	Stdout io.Writer
	// Sockets are the sockets systemd passed (listen.SystemdSockets),
	// taken by the listeners bound to their addresses or named like
	// them (reverse-ROUTE, forward, admin); Serve closes the others and
	// fails. Nil binds every listener.
	Sockets *listen.Sockets
}

// Server is one running credproxy: a cache per route, a reverse listener
// per route that has one, the forward proxy when configured, and the
// admin listener. Its fields are set by New and never change after;
// Serve is called once.
type Server struct {
	cfg     *config.Config
	opts    Options
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
	// hup is the SIGHUP renewals under way; Serve waits for them.
	hup reloader
	// warm are start-up work Serve runs beside serving (the token API's
	// identity fingerprints); set by New.
	warm []func()
	// audit writes CREDPROXY_AUDIT_LOG: one line per decision on a
	// credential. It records nothing when auditing is off.
	audit *edge.Auditor
	// forwardKeys are CREDPROXY_FORWARD_KEYS_FILE's; nil without one.
	forwardKeys *edge.Keys
}

// New builds the server of cfg, logging the configuration's warnings
// first. It binds nothing and starts no goroutine.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.CALifetime <= 0 {
		opts.CALifetime = RunCALifetime
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	log := opts.Logger
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if err := CheckSinkPaths(cfg.Routes); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{cfg: cfg, opts: opts, log: log, metrics: proxy.NewMetrics(reg), edge: edge.NewMetrics(reg), transport: proxy.NewTransport(nil)}
	m := routeMetrics{tokens: tokencache.NewMetrics(reg), sinks: tokensink.NewMetrics(reg), expiry: credexpiry.NewMetrics(reg)}
	audit, err := newAuditor(cfg.AuditLog, opts.Stdout, s.edge, log)
	if err != nil {
		return nil, err
	}
	s.audit = audit
	m.audit = audit
	client := exchange.NewHTTPClient()
	for _, rc := range cfg.Routes {
		r, err := newLiveRoute(rc, client, m, log)
		if err != nil {
			return nil, err
		}
		s.routes = append(s.routes, r)
	}
	if err := s.loadKeys(); err != nil {
		return nil, err
	}
	var caPEM func() []byte
	if cfg.ForwardAddr != "" {
		if err := s.newForward(); err != nil {
			return nil, err
		}
		caPEM = func() []byte { return s.forward.CA().CertPEM() }
	}
	s.admin = admin.New(s.adminOptions(reg, caPEM, log))
	return s, nil
}

// newForward builds the forward proxy, with its CA (whose certificate
// the admin listener serves at /ca.pem).
func (s *Server) newForward() error {
	ca, err := loadCA(s.cfg, s.opts.CALifetime, s.log)
	if err != nil {
		return err
	}
	var routes []*proxy.Route
	for _, r := range s.routes {
		routes = append(routes, r.route)
	}
	// Requests the forward proxy carries to a route host are guarded
	// against browsers there, with the target's origin as their own.
	proxied := edge.NewBrowser(s.browserOptions("forward", "", false, true))
	s.forward = proxy.NewForward(routes, s.transport, s.metrics, proxy.ForwardOptions{
		CA: ca, DenyOthers: s.cfg.ForwardDenyOthers, Guard: s.forwardGuard(proxied),
		Authorize: s.forwardAuthorize(), Identify: s.forwardIdentify(), AuthRealm: s.opts.AuthRealm,
		// The forward listener's own requests meet the browser guard too.
		ListenerGuard: func(ln net.Listener, h http.Handler) http.Handler { return s.guard(ln, "forward", "", h) },
	}, s.log.Named("proxy"))
	return nil
}

// ForwardCA is the CA that signs the forward proxy's leaves now; nil
// without a forward proxy.
func (s *Server) ForwardCA() *mitm.CA {
	if s.forward == nil {
		return nil
	}
	return s.forward.CA()
}

// Serve binds every listener, runs until ctx ends, then shuts down along
// the one path of the contract: /readyz fails, in-flight requests drain up
// to the shutdown timeout, the caches stop (ending sessions), the admin
// listener closes. It returns the error of a listener that failed (nil
// when ctx ended), or why binding failed, in which case nothing stays
// bound and nothing was started.
func (s *Server) Serve(ctx context.Context) error {
	routeLns, adminLn, err := s.bind()
	if err != nil {
		return err
	}

	s.audit.Start()
	defer s.audit.Close() // after the listeners drained: their last lines are written
	cacheCtx, stopCaches := context.WithCancel(context.WithoutCancel(ctx))
	var caches sync.WaitGroup
	for _, r := range s.routes {
		caches.Go(func() { r.cache.Run(cacheCtx) })
		caches.Go(func() { r.expiry.Run(cacheCtx) })
	}
	for _, w := range s.warm {
		caches.Go(w)
	}
	s.startSinks(cacheCtx, &caches)

	serveErr := make(chan error, len(routeLns)+1)
	all := routeLns
	if adminLn != nil {
		all = append(all[:len(all):len(all)], adminLn)
	}
	if s.forward != nil {
		for _, l := range all {
			s.forward.RefuseSelf(l.ln.Addr())
		}
	}
	for _, l := range all {
		addr := addrString(l.ln.Addr())
		s.log.Info("listening", zap.String("listener", l.name), zap.String("addr", addr))
		if s.opts.OnListen != nil {
			s.opts.OnListen(l.name, addr)
		}
		go func() {
			if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("%s: %w", l.name, err)
			}
		}()
	}

	stopNotify := s.startNotify(ctx)
	runErr := s.wait(ctx, serveErr)
	stopNotify()
	s.shutdown(routeLns, adminLn, func() { stopCaches(); caches.Wait(); s.hup.wait() })
	return runErr
}

// wait serves until ctx ends or a listener fails (its error is returned),
// handing each SIGHUP of Options.Hangup to reload meanwhile.
func (s *Server) wait(ctx context.Context, serveErr <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			s.log.Info("shutting down: readiness off, draining requests", zap.Duration("timeout", s.cfg.ShutdownTimeout))
			return nil
		case err := <-serveErr:
			s.log.Error("listener failed; shutting down", zap.Error(err))
			return err
		case <-s.opts.Hangup:
			s.reload(ctx)
		}
	}
}

// shutdown fails readiness, drains the route listeners (the forward
// proxy among them) up to the shutdown timeout, then calls stopCaches (which ends
// sessions) and closes the admin listener last.
func (s *Server) shutdown(routeLns []*listener, adminLn *listener, stopCaches func()) {
	s.admin.ShuttingDown()
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var drained sync.WaitGroup
	for _, l := range routeLns {
		drained.Go(func() {
			if err := l.srv.Shutdown(drainCtx); err != nil {
				s.log.Warn("drain timed out; closing connections", zap.String("listener", l.name), zap.Error(err))
				l.srv.Close()
			}
		})
	}
	drained.Wait()
	stopCaches()
	if adminLn != nil {
		adminCtx, cancelAdmin := context.WithTimeout(context.Background(), adminDrainTimeout)
		defer cancelAdmin()
		if err := adminLn.srv.Shutdown(adminCtx); err != nil {
			adminLn.srv.Close()
		}
	}
	s.log.Info("stopped")
}

// WaitTokens waits until every route holds a token, each for at most its
// TOKEN_WAIT (all at once, so the bound is the longest of them). It is
// for a caller that must not start before (exec), while Serve runs.
func (s *Server) WaitTokens(ctx context.Context) error {
	errs := make([]error, len(s.routes))
	var wg sync.WaitGroup
	for i, r := range s.routes {
		wg.Go(func() {
			if _, err := r.cache.Token(ctx); err != nil {
				errs[i] = fmt.Errorf("no token for route %s within %s (%sTOKEN_WAIT): %w", r.cfg.Name, r.cfg.TokenWait, r.cfg.Prefix, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// NewLogger builds the process logger: JSON (default) or console, on w,
// at level (CREDPROXY_LOG_LEVEL). Sampling is off: an exchange failure
// must never be dropped.
func NewLogger(level, format string, w io.Writer) (*zap.Logger, error) {
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
