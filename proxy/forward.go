package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/internal/outbound"
	"github.com/credproxy/credproxy/internal/reqinfo"
	"github.com/credproxy/credproxy/mitm"
)

// Forward-proxy limits.
const (
	// DefaultTunnelIdleTimeout closes a blind tunnel after this long
	// without a byte in either direction.
	DefaultTunnelIdleTimeout = 5 * time.Minute
)

// ForwardOptions configures the forward proxy.
type ForwardOptions struct {
	// CA signs the leaf certificates of intercepted hosts, until SetCA
	// replaces it.
	CA *mitm.CA
	// DenyOthers refuses CONNECTs and plain requests to hosts of no route
	// (403) instead of tunnelling them untouched.
	DenyOthers bool
	// TunnelIdleTimeout closes idle blind tunnels; zero means
	// DefaultTunnelIdleTimeout. Intercepted tunnels are closed after
	// IdleTimeout like any keep-alive connection.
	TunnelIdleTimeout time.Duration
	// Guard, when set, wraps the handler of each route's proxied requests
	// (inside an intercepted tunnel, or plain absolute-form ones to a
	// route host): it sees them before the credential is read and may
	// refuse them (edge.Browser.Proxied: another site's page must not
	// spend the credential through a browser configured with this proxy).
	// Tunnels to other hosts carry no credential and are not guarded.
	Guard func(route string, next http.Handler) http.Handler
	// Authorize, when set, decides whether the caller of a request to the
	// forward-proxy listener (a CONNECT, an absolute-form request,
	// anything) may be served: it is called first, before the CONNECT
	// decision or any forwarding, and an error refuses the request with
	// 407 and nothing is proxied. The request's RemoteAddr and its
	// context's http.LocalAddrContextKey give the connection's two ends;
	// its Proxy-Authorization header is removed once it has been called,
	// so that it never travels further. The error is logged: it must not
	// hold a secret. It may be called concurrently.
	Authorize func(r *http.Request) error
	// Identify, when set, names the caller of a request Authorize
	// accepted (a forward key's name; "" for none), before its
	// Proxy-Authorization is removed. The name reaches the route
	// handlers of that request, and of every request inside its CONNECT
	// tunnel, as reqinfo.Caller. It may be called concurrently.
	Identify func(r *http.Request) string
	// AuthRealm is the realm of the Proxy-Authenticate: Basic challenge
	// sent with a 407 (clients that send proxy credentials retry with
	// them); empty means "credproxy".
	AuthRealm string
	// ListenerGuard, when set, wraps the handler of the listener Serve is
	// given, in front of everything else (credproxy puts the edge's
	// browser guard for the forward listener there, whose checks depend
	// on the address the listener is bound to, known only then).
	ListenerGuard func(ln net.Listener, next http.Handler) http.Handler
}

// Forward is the forward proxy (HTTPS_PROXY) for every route.
//
// It is built on goproxy for the CONNECT handling and for passing other
// traffic through, with credproxy's own CONNECT decision, transport, CA
// and certificate cache (goproxy.go lists what it changes of goproxy's
// defaults). A CONNECT to a route host is intercepted: the TLS connection
// is terminated with a leaf signed by the CA and served by an http.Server
// of credproxy's own, whose handler is the same injecting reverse proxy
// as reverse mode. That server brings what goproxy's own MITM loop lacks:
// idle and header timeouts, HTTP/2 from clients, streaming flushes,
// websocket upgrades, and upstream connection reuse whatever the client's
// Connection header says.
//
// Its life, as ghostunnel's proxy's: NewForward starts nothing; Serve
// serves a listener, and starts the server of intercepted connections;
// Shutdown (or Close) stops both, and may be called more than once, or
// without Serve; Wait returns once everything Serve started has ended.
type Forward struct {
	// byHost is each route host's handler (its proxy, counted, behind
	// the guard), by Authority("https", host).
	byHost map[string]http.Handler
	gp     *goproxy.ProxyHttpServer
	// signer is the CA and its leaf cache; SetCA replaces both at once.
	signer atomic.Pointer[signer]
	// signed counts leaf signatures across CAs; onSign also bumps the
	// metric.
	signed atomic.Int64
	deny   bool
	idle   time.Duration
	log    *zap.Logger
	m      *Metrics
	// authorize and realm are ForwardOptions.Authorize and AuthRealm;
	// listenerGuard is ListenerGuard.
	authorize     func(*http.Request) error
	identify      func(*http.Request) string
	realm         string
	listenerGuard func(net.Listener, http.Handler) http.Handler
	// self holds credproxy's own listener addresses, which the forward
	// proxy never tunnels or forwards to.
	self selfAddrs

	// front serves the listener given to Serve; mitm serves the
	// intercepted connections, fed by mitmLn. NewForward makes them and
	// Serve starts them.
	front  *http.Server
	mitm   *http.Server
	mitmLn *connQueue
	// mu guards served and stopped, so that Serve starts the servers
	// at most once and never after Shutdown or Close, and Wait knows
	// whether there is anything to wait for.
	mu              sync.Mutex
	served, stopped bool
	// running counts Serve and mitm's goroutine while they run. Its Add
	// happens under mu with served set, before any Wait can see served.
	running sync.WaitGroup
}

// errServedTwice is Serve's answer to a second call.
var errServedTwice = errors.New("proxy: Forward.Serve called twice")

// signer is a CA with the cache of the leaves it signed. They are
// published together so that an interception never gets a leaf of one
// CA out of the cache of another.
type signer struct {
	ca     *mitm.CA
	leaves *mitm.Leaves
}

// NewForward returns the forward proxy for routes. It starts nothing:
// Serve does.
//
// transport carries the routes' requests, each route in its own pools
// (ForRoute); traffic to other hosts goes through a pool of its own whose
// connections may not reach credproxy's own listeners (RefuseSelf).
func NewForward(routes []*Route, transport *Transport, metrics *Metrics, opts ForwardOptions, log *zap.Logger) *Forward {
	f := &Forward{
		byHost: map[string]http.Handler{},
		deny:   opts.DenyOthers,
		idle:   opts.TunnelIdleTimeout,
		log:    log.Named("forward"),
		m:      metrics,
		mitmLn: newConnQueue(),

		authorize:     opts.Authorize,
		identify:      opts.Identify,
		realm:         opts.AuthRealm,
		listenerGuard: opts.ListenerGuard,
	}
	if f.idle <= 0 {
		f.idle = DefaultTunnelIdleTimeout
	}
	f.self.log = f.log
	if f.realm == "" {
		f.realm = "credproxy"
	}
	f.SetCA(opts.CA)
	for _, r := range routes {
		var h http.Handler = r.handler(mode{name: "forward", target: forwardTarget}, transport, metrics, f.log)
		if opts.Guard != nil {
			h = opts.Guard(r.name, h)
		}
		for a := range r.authorities {
			f.byHost[a] = h
		}
	}
	f.gp = f.newGoproxy(transport)
	// The listener's server logs as a reverse listener's does; the
	// intercepted connections' as the forward proxy.
	f.front = NewServer(nil, log)
	f.front.ConnContext = listen.ConnContext
	f.mitm = NewServer(http.HandlerFunc(f.serveIntercepted), f.log)
	f.mitm.ConnContext = interceptedContext
	return f
}

// Serve serves the forward-proxy listener ln until Shutdown or Close,
// and the connections it intercepts, and returns http.ErrServerClosed
// then, as http.Server.Serve does; it closes ln. It may be called once: a
// second call returns an error, and a call after Shutdown or Close
// returns http.ErrServerClosed at once. When it returns another error (the
// listener failed), the intercepted connections are still served: call
// Shutdown or Close.
func (f *Forward) Serve(ln net.Listener) error {
	f.mu.Lock()
	if f.stopped || f.served {
		f.mu.Unlock()
		ln.Close()
		if f.stopped {
			return http.ErrServerClosed
		}
		return errServedTwice
	}
	f.served = true
	var h http.Handler = http.HandlerFunc(f.serveProxy)
	if f.listenerGuard != nil {
		h = f.listenerGuard(ln, h)
	}
	// Set before front serves, and never again.
	f.front.Handler = h
	f.running.Add(2)
	go func() {
		defer f.running.Done()
		_ = f.mitm.Serve(f.mitmLn) // ErrServerClosed once stopped: mitmLn only closes then
	}()
	f.mu.Unlock()
	defer f.running.Done()
	return f.front.Serve(ln)
}

// Shutdown stops accepting connections and CONNECTs, and waits, up to
// ctx, for the listener's requests and the intercepted connections to
// finish. Blind tunnels are not waited for: they end with either end, or
// after TunnelIdleTimeout. It may be called again, and without Serve. On
// an error (ctx ended), call Close.
func (f *Forward) Shutdown(ctx context.Context) error {
	f.stop()
	var frontErr error
	var both sync.WaitGroup
	both.Go(func() { frontErr = f.front.Shutdown(ctx) })
	mitmErr := f.mitm.Shutdown(ctx)
	both.Wait()
	return errors.Join(frontErr, mitmErr)
}

// Close closes the listener and every connection, intercepted ones
// included, at once. It may be called again, and without Serve.
func (f *Forward) Close() error {
	f.stop()
	return errors.Join(f.front.Close(), f.mitm.Close())
}

// stop makes Serve refuse to start and hands intercepted connections
// nowhere: those pushed from now on are closed.
func (f *Forward) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.mitmLn.Close()
}

// Wait returns once Serve has returned and the server of intercepted
// connections has stopped (after Shutdown or Close); at once if Serve was
// never called.
func (f *Forward) Wait() {
	f.mu.Lock()
	served := f.served
	f.mu.Unlock()
	if served {
		f.running.Wait()
	}
}

// forwardTarget is where an intercepted or upgraded request goes: https to
// the host it was addressed to. A request without one (none reaches a
// route's handler) gets no host, which no route allows.
func forwardTarget(r *http.Request) *url.URL {
	host, _ := connectHost(r.Context())
	return &url.URL{Scheme: "https", Host: host}
}

// connectHostKey is the context key of an intercepted or upgraded
// request's destination authority: the CONNECT's, or the https one a
// plain request is upgraded to.
type connectHostKey struct{}

func withConnectHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, connectHostKey{}, host)
}

// connectHost returns the request's destination authority, if it has one.
func connectHost(ctx context.Context) (string, bool) {
	host, ok := ctx.Value(connectHostKey{}).(string)
	return host, ok
}

// interceptedConn is the client's side of an intercepted tunnel, under
// its TLS, carrying what is known of the connection: the CONNECT
// authority. It sits under the *tls.Conn, not around it: net/http's
// server does TLS (and offers HTTP/2) only on a *tls.Conn it is given.
type interceptedConn struct {
	net.Conn
	host string
	// caller is the name Identify gave the CONNECT's caller ("": none).
	caller string
}

// interceptedContext is the mitm server's ConnContext: it gives the
// requests of an intercepted connection their CONNECT authority.
func interceptedContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		if ic, ok := tc.NetConn().(*interceptedConn); ok {
			ctx = listen.ConnContext(ctx, ic.Conn)
			if ic.caller != "" {
				ctx = reqinfo.WithCaller(ctx, ic.caller)
			}
			return withConnectHost(ctx, ic.host)
		}
	}
	return ctx
}

// serveProxy serves the forward-proxy listener.
func (f *Forward) serveProxy(w http.ResponseWriter, r *http.Request) {
	r, ok := f.authorized(w, r)
	if !ok {
		return
	}
	if r.Method == http.MethodConnect || !r.URL.IsAbs() {
		f.gp.ServeHTTP(w, r)
		return
	}
	// A plain-http request. To a route host it is sent upstream over
	// https with the credential: the credential never travels in clear.
	host := plainAuthority(r.URL)
	if f.self.isSelfHost(r.URL.Host) {
		f.refuseSelf(w, r.URL.Host)
		return
	}
	if h, ok := f.byHost[host]; ok && r.URL.Scheme == "http" {
		h.ServeHTTP(w, r.WithContext(withConnectHost(r.Context(), host)))
		return
	}
	if f.deny {
		writeError(w, http.StatusForbidden, errorBody{Error: "host_not_allowed", Detail: "credproxy forwards only to the hosts of its routes"})
		return
	}
	f.gp.ServeHTTP(w, r)
}

// authorized asks Authorize about r's caller; a refusal is answered with
// 407 and a Basic challenge, on a connection that is then closed (a
// client that retries with credentials opens a new one).
func (f *Forward) authorized(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if f.authorize == nil {
		return r, true
	}
	err := f.authorize(r)
	if err == nil && f.identify != nil {
		if name := f.identify(r); name != "" {
			r = r.WithContext(reqinfo.WithCaller(r.Context(), name))
		}
	}
	r.Header.Del("Proxy-Authorization")
	if err == nil {
		return r, true
	}
	f.m.connects.WithLabelValues("unauthorized").Inc()
	f.log.Warn("forward proxy: caller not authorized; refused with 407",
		zap.String("remote", r.RemoteAddr), zap.String("method", r.Method), zap.Error(err))
	w.Header().Set("Proxy-Authenticate", `Basic realm="`+f.realm+`"`)
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusProxyAuthRequired, errorBody{Error: "proxy_auth_required", Detail: "this proxy serves only its own user: send its proxy credentials"})
	return r, false
}

// plainAuthority maps a plain-http URL's host to the https authority it is
// upgraded to: port 80 (or none) becomes 443, another port is kept.
func plainAuthority(u *url.URL) string {
	if p := u.Port(); p != "" && p != "80" {
		return Authority("https", u.Host)
	}
	return Authority("https", u.Hostname())
}

// decide is the CONNECT decision: intercept route hosts, tunnel or refuse
// the others.
func (f *Forward) decide(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	auth := Authority("https", host)
	if f.self.isSelfHost(host) {
		f.m.connects.WithLabelValues("deny").Inc()
		f.log.Warn("CONNECT to one of credproxy's own listeners refused", zap.String("host", host))
		ctx.Resp = textResponse(http.StatusForbidden, selfRefusal+"\n")
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host
	}
	if _, ok := f.byHost[auth]; ok {
		f.m.connects.WithLabelValues("intercept").Inc()
		return &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: func(req *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
			f.intercept(client, auth, reqinfo.Caller(req.Context()))
		}}, host
	}
	if f.deny {
		f.m.connects.WithLabelValues("deny").Inc()
		f.log.Info("CONNECT refused: not a route host", zap.String("host", host))
		ctx.Resp = textResponse(http.StatusForbidden, "credproxy forwards only to the hosts of its routes\n")
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host
	}
	f.m.connects.WithLabelValues("tunnel").Inc()
	return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, host
}

// textResponse is a plain-text answer to a CONNECT that is refused.
func textResponse(status int, msg string) *http.Response {
	return &http.Response{
		StatusCode: status, ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Connection": {"close"}},
		Body:          io.NopCloser(strings.NewReader(msg)),
		ContentLength: int64(len(msg)),
	}
}

// selfRefusal says why a request to credproxy's own listener is refused.
const selfRefusal = "credproxy does not proxy to its own listeners"

// refuseSelf answers a plain request addressed to one of credproxy's own
// listeners.
func (f *Forward) refuseSelf(w http.ResponseWriter, host string) {
	f.log.Warn("request to one of credproxy's own listeners refused", zap.String("host", host))
	writeError(w, http.StatusForbidden, errorBody{Error: "loop_refused", Detail: selfRefusal})
}

// RefuseSelf adds one of credproxy's own listener addresses (admin,
// reverse, forward) to those the forward proxy never tunnels or forwards
// to: through the forward proxy, the token API would otherwise answer a
// caller it cannot see is proxied, and a CONNECT to the forward proxy
// itself would loop. Call it for every listener before serving.
func (f *Forward) RefuseSelf(addr net.Addr) { f.self.add(addr) }

// SetCA makes ca sign the leaves of the connections intercepted from now
// on, with a leaf cache of its own: no leaf of the previous CA is served
// again. Connections intercepted before keep the leaf their handshake
// used, and nothing is dropped. It may be called while the proxy serves
// (credproxy's SIGHUP reloads the CA files).
func (f *Forward) SetCA(ca *mitm.CA) {
	f.signer.Store(&signer{ca: ca, leaves: mitm.NewLeaves(ca, func() {
		f.signed.Add(1)
		f.m.leafSigned.Inc()
	})})
}

// CA returns the CA that signs the leaves of new interceptions.
func (f *Forward) CA() *mitm.CA { return f.signer.Load().ca }

// intercept answers the CONNECT and hands the client's TLS connection to
// the mitm server.
func (f *Forward) intercept(client net.Conn, host, caller string) {
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		client.Close()
		return
	}
	hostname, _, _ := net.SplitHostPort(host)
	// The CA of the moment of the CONNECT signs this tunnel's leaf, even
	// if SetCA runs before the client's hello arrives.
	leaves := f.signer.Load().leaves
	conn := tls.Server(&interceptedConn{Conn: client, host: host, caller: caller}, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			// The certificate is for the CONNECT host whatever SNI says:
			// that is the only host this tunnel may reach.
			return leaves.Get(hostname)
		},
	})
	f.mitmLn.push(conn)
}

// serveIntercepted handles a request inside an intercepted tunnel. The
// request must be addressed to the CONNECT host: a client (or a script
// fed hostile input) that sends Host: other.example inside a tunnel to an
// API host must not get the credential sent elsewhere.
func (f *Forward) serveIntercepted(w http.ResponseWriter, r *http.Request) {
	host, _ := connectHost(r.Context())
	h, ok := f.byHost[host]
	if !ok || Authority("https", r.Host) != host {
		f.log.Warn("request inside a tunnel addressed to another host; refused",
			zap.String("connect", host), zap.String("host", r.Host))
		writeError(w, http.StatusMisdirectedRequest, errorBody{Error: "misdirected_request", Detail: "the Host header does not match the CONNECT target " + host})
		return
	}
	h.ServeHTTP(w, r)
}

// dialTunnel connects a blind tunnel, directly (no proxy from the
// environment), and closes it once idle for the idle timeout.
func (f *Forward) dialTunnel(req *http.Request, network, addr string) (net.Conn, error) {
	c, err := f.self.guard(outbound.Dialer().DialContext)(req.Context(), network, addr)
	if err != nil {
		return nil, err
	}
	return newIdleConn(c, f.idle), nil
}

// SignedLeaves reports how many leaf certificates have been signed, by
// every CA the proxy has had.
func (f *Forward) SignedLeaves() int64 { return f.signed.Load() }

// idleConn closes a blind tunnel that has been silent in both directions
// for timeout: each read or write pushes the deadline forward.
type idleConn struct {
	net.Conn
	timeout time.Duration
}

func newIdleConn(c net.Conn, timeout time.Duration) *idleConn {
	_ = c.SetDeadline(time.Now().Add(timeout))
	return &idleConn{Conn: c, timeout: timeout}
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(c.timeout))
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(c.timeout))
	}
	return n, err
}

// connQueue is a net.Listener fed by push: it hands intercepted
// connections to an http.Server.
type connQueue struct {
	ch     chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.closer.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return queueAddr{} }

type queueAddr struct{}

func (queueAddr) Network() string { return "intercepted" }
func (queueAddr) String() string  { return "intercepted" }
