package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/jsonerror"
)

// NewReverse returns the reverse proxy of one route: every request is
// forwarded to the route's upstream with the route's credential, replacing
// whatever credential the client sent.
//
// Hop-by-hop headers are removed as httputil.ReverseProxy does; responses
// stream through and are flushed as they arrive; redirects go back to the
// client (a Location on the upstream itself is rewritten to come back
// through the proxy); nothing is followed with the credential. The route's
// requests go through its own pools of transport (ForRoute).
func NewReverse(route *Route, transport *Transport, metrics *Metrics, log *zap.Logger) http.Handler {
	upstream := route.upstream
	return route.handler(mode{
		name:           "reverse",
		target:         func(*http.Request) *url.URL { return upstream },
		modifyResponse: func(resp *http.Response) error { rewriteLocation(resp, upstream); return nil },
		check:          func(next http.Handler) http.Handler { return &dotSegmentGuard{next: next, route: route.name} },
	}, transport, metrics, log)
}

// mode is what differs between a route's reverse and forward proxies.
type mode struct {
	// name is the mode's label in metrics and logs.
	name string
	// target is where a request goes.
	target func(*http.Request) *url.URL
	// modifyResponse, when set, is the ReverseProxy's ModifyResponse.
	modifyResponse func(*http.Response) error
	// check, when set, wraps the proxy with the mode's own refusals of
	// a request, which are counted like the proxy's answers.
	check func(http.Handler) http.Handler
}

// handler returns the handler that carries the route's requests in mode
// m to m.target(request), injecting the credential, in the route's own
// pools of transport; TRACE and TRACK are refused first, then m.check
// runs. Both modes count their requests by status here, and only here.
func (r *Route) handler(m mode, transport *Transport, metrics *Metrics, log *zap.Logger) http.Handler {
	rm := metrics.forRoute(r.name, m.name)
	log = log.With(zap.String("route", r.name), zap.String("mode", m.name))
	pools := transport.ForRoute(r.name)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(m.target(pr.In))
			// The client's own value must not reach the upstream, even
			// if injection were skipped, nor a header that some server
			// could take for it.
			r.dropClientCredential(pr.Out.Header)
		},
		Transport:      &timedTransport{next: &injector{route: r, next: pools, pools: pools, metrics: rm, log: log}, metrics: rm},
		FlushInterval:  flushInterval,
		BufferPool:     &bufferPool{},
		ErrorHandler:   errorHandler(r.name, log),
		ErrorLog:       zap.NewStdLog(log.Named("httputil")),
		ModifyResponse: m.modifyResponse,
	}
	var h http.Handler = &refuseReadBackMethods{next: rp, route: r.name}
	if m.check != nil {
		h = m.check(h)
	}
	return newCountingHandler(h, rm)
}

// flushInterval bounds how long part of a response body with a known
// length waits in the write buffer. Streamed responses (no length, or
// text/event-stream) are flushed after every write whatever this says, as
// httputil.ReverseProxy does. Flushing every write of every response (a
// negative interval) costs a write system call for the headers and one
// for each body chunk, and a timer goroutine per request: on a small API
// answer, a third of the proxy's CPU time.
const flushInterval = 10 * time.Millisecond

// rewriteLocation turns a redirect to the upstream itself into a path, so
// the client follows it through the proxy and keeps getting the
// credential. A redirect elsewhere is left alone: the client may follow
// it, without the credential.
func rewriteLocation(resp *http.Response, upstream *url.URL) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return
	}
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() || u.Scheme != upstream.Scheme || Authority(u.Scheme, u.Host) != Authority(upstream.Scheme, upstream.Host) {
		return
	}
	base := strings.TrimSuffix(upstream.Path, "/")
	if !strings.HasPrefix(u.Path, base+"/") && u.Path != base {
		return
	}
	rel := &url.URL{Path: "/" + strings.TrimPrefix(strings.TrimPrefix(u.Path, base), "/"), RawQuery: u.RawQuery, Fragment: u.Fragment}
	resp.Header.Set("Location", rel.String())
}

// errorBody is the JSON body of every error credproxy itself answers.
type errorBody = jsonerror.Body

func writeError(w http.ResponseWriter, status int, body errorBody) { jsonerror.Write(w, status, body) }

// errorHandler answers for a request that got no upstream response: 503
// when no credential could be had (fail closed), 499-like silence when the
// client went away, 400 when its body could not be read, 504 on a
// timeout, 502 otherwise.
func errorHandler(route string, log *zap.Logger) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		var cred *errCredential
		var ue exchange.Unavailable
		var body *clientBodyError
		switch {
		case errors.As(err, &cred) && errors.As(err, &ue):
			log.Warn("request refused: no valid credential", zap.String("detail", ue.ClientDetail()), zap.NamedError("cause", ue.LogCause()))
			writeError(w, http.StatusServiceUnavailable, errorBody{Error: "credential_unavailable", Route: route, Detail: ue.ClientDetail()})
		case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
			// Nothing can reach the client; only the metric records it.
			log.Debug("client went away", zap.String("method", r.Method), zap.String("path", r.URL.Path))
			if sw, ok := w.(*statusWriter); ok {
				sw.status = statusClientClosed
			}
		case errors.As(err, &body):
			log.Debug("request body unreadable", zap.Error(err))
			writeError(w, http.StatusBadRequest, errorBody{Error: "bad_request", Route: route, Detail: err.Error()})
		case errors.As(err, &cred):
			writeError(w, http.StatusServiceUnavailable, errorBody{Error: "credential_unavailable", Route: route, Detail: err.Error()})
		case errors.Is(err, errNotAllowed):
			log.Error("refused to send the credential off-route", zap.Error(err))
			writeError(w, http.StatusBadGateway, errorBody{Error: "destination_not_allowed", Route: route, Detail: err.Error()})
		case isTimeout(err):
			log.Warn("upstream timed out", zap.Error(err))
			writeError(w, http.StatusGatewayTimeout, errorBody{Error: "upstream_timeout", Route: route, Detail: err.Error()})
		default:
			log.Warn("upstream unavailable", zap.Error(err))
			writeError(w, http.StatusBadGateway, errorBody{Error: "upstream_unavailable", Route: route, Detail: err.Error()})
		}
	}
}

// statusClientClosed is recorded (as nginx does) when the client went away
// before a response; nothing reaches the client.
const statusClientClosed = 499

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// timedTransport records the upstream latency: until response headers.
type timedTransport struct {
	next    http.RoundTripper
	metrics *routeMetrics
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		t.metrics.upstreamLatency(time.Since(start))
	}
	return resp, err
}

// countingHandler counts requests by the status returned to the client.
type countingHandler struct {
	next    http.Handler
	metrics *routeMetrics
	// writers recycles the statusWriters: one per request otherwise. A
	// writer is not used after ServeHTTP returns (the reverse proxy
	// finishes upgrades and streams before it returns).
	writers sync.Pool
}

func newCountingHandler(next http.Handler, m *routeMetrics) *countingHandler {
	return &countingHandler{next: next, metrics: m, writers: sync.Pool{New: func() any { return new(statusWriter) }}}
}

func (h *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := h.writers.Get().(*statusWriter)
	*sw = statusWriter{ResponseWriter: w}
	h.next.ServeHTTP(sw, r)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	h.metrics.request(sw.status)
	*sw = statusWriter{}
	h.writers.Put(sw)
}

// statusWriter remembers the status code. Unwrap lets
// http.ResponseController reach Flush and Hijack (streaming, websockets).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 || (w.status >= 100 && w.status < 200) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// copyBufferSize is the size of httputil.ReverseProxy's copy buffers.
const copyBufferSize = 32 << 10

// bufferPool recycles the copy buffers of httputil.ReverseProxy. It keeps
// them as array pointers, so that putting one back allocates nothing (a
// []byte put into a sync.Pool would be boxed).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if a, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return a[:]
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(p []byte) {
	if len(p) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(p))
	}
}
