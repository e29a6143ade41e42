package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is the transport of requests to upstream APIs.
//
// A route's requests take a fast path: HTTP/1.1 over pooled keep-alive
// connections, each request written and its response read on the calling
// goroutine. net/http's Transport hands every request to a connection's
// write goroutine and its response back from a read goroutine; on a proxy
// whose requests are small API calls those hand-offs (a thread wake-up
// each) cost more than the rest of the request together. Requests the fast
// path does not take (protocol upgrades, Expect: 100-continue, bodies that
// stream, trailers) and all other traffic go through the embedded
// http.Transport, which also holds the settings both share.
type Upstream struct {
	*http.Transport

	mu   sync.Mutex
	idle map[string][]*h1Conn // by host:port, most recently used last
	// nIdle counts idle connections over all hosts.
	nIdle int
}

// NewUpstreamTransport returns the transport for requests to upstream APIs.
//
// TLS is verified against the system roots; SSL_CERT_FILE and SSL_CERT_DIR
// add a private CA. No proxy is taken from the environment: a sidecar
// inherits the HTTPS_PROXY its scripts use, which may be credproxy itself,
// and following it would loop. Compression is left to the client, so
// bodies pass through byte for byte. Connections are pooled generously:
// one sidecar carries all of an app's calls to few hosts.
func NewUpstreamTransport() *Upstream {
	return &Upstream{Transport: &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  2 * time.Minute,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
	}}
}

// RoundTrip sends req on the fast path when it can, else through the
// embedded http.Transport.
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fastPath(req) {
		return u.Transport.RoundTrip(req)
	}
	for attempt := 0; ; attempt++ {
		c, err := u.conn(req)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(u, req)
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection the upstream closed while it sat idle
		// fails before any answer: send the request again on a new one,
		// once, when that cannot do it twice.
		if !c.reused || attempt > 0 || !errors.Is(err, errNoAnswer) || !retryable(req) {
			return nil, err
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// fastPath tells whether req can be sent on the fast path: an HTTP/1.1
// request whose body, if any, is in memory (the injector keeps bodies up
// to MaxReplayBody for a replay), with nothing that needs net/http's
// concurrent reading and writing.
func fastPath(req *http.Request) bool {
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	if req.Method == http.MethodConnect || len(req.Trailer) > 0 || req.ContentLength < 0 {
		return false
	}
	h := req.Header
	return len(h["Upgrade"]) == 0 && len(h["Expect"]) == 0 && len(h["Te"]) == 0
}

// retryable tells whether req may be sent a second time after a
// connection failed before answering: as net/http does, idempotent methods
// only, with their body available again.
func retryable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
}

// conn returns an idle connection to req's host, or a new one.
func (u *Upstream) conn(req *http.Request) (*h1Conn, error) {
	key := canonicalAddr(req.URL.Scheme, req.URL.Host)
	u.mu.Lock()
	for {
		list := u.idle[key]
		if len(list) == 0 {
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		u.idle[key] = list[:len(list)-1]
		u.nIdle--
		if !c.idleTimer.Stop() {
			// Its idle timeout fired; the timer closes it.
			continue
		}
		u.mu.Unlock()
		if c.alive() {
			c.reused = true
			return c, nil
		}
		c.close()
		u.mu.Lock()
	}
	u.mu.Unlock()
	return u.dial(req.Context(), req.URL.Scheme, key)
}

// put keeps c for reuse, or closes it when the pool is full.
func (u *Upstream) put(c *h1Conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.nIdle >= u.MaxIdleConns || len(u.idle[c.key]) >= u.MaxIdleConnsPerHost {
		c.close()
		return
	}
	if u.idle == nil {
		u.idle = map[string][]*h1Conn{}
	}
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(u.IdleConnTimeout, func() { u.expire(c) })
	} else {
		c.idleTimer.Reset(u.IdleConnTimeout)
	}
	u.idle[c.key] = append(u.idle[c.key], c)
	u.nIdle++
}

// expire removes c from the pool after its idle timeout and closes it.
func (u *Upstream) expire(c *h1Conn) {
	u.mu.Lock()
	list := u.idle[c.key]
	for i, ic := range list {
		if ic == c {
			u.idle[c.key] = slices.Delete(list, i, i+1)
			u.nIdle--
			break
		}
	}
	u.mu.Unlock()
	c.close()
}

// CloseIdleConnections closes the idle connections of both paths.
func (u *Upstream) CloseIdleConnections() {
	u.mu.Lock()
	var all []*h1Conn
	for k, list := range u.idle {
		for _, c := range list {
			if c.idleTimer.Stop() {
				all = append(all, c)
			}
		}
		delete(u.idle, k)
	}
	u.nIdle = 0
	u.mu.Unlock()
	for _, c := range all {
		c.close()
	}
	u.Transport.CloseIdleConnections()
}

// dial opens a connection to addr, with TLS for https, offering HTTP/1.1
// only.
func (u *Upstream) dial(ctx context.Context, scheme, addr string) (*h1Conn, error) {
	nc, err := u.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if scheme == "https" {
		cfg := u.TLSClientConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg.NextProtos = []string{"http/1.1"}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, u.TLSHandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c := &h1Conn{key: addr, conn: nc, limit: &limitedReader{r: nc}}
	c.br = bufio.NewReaderSize(c.limit, 4<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	return c, nil
}

// canonicalAddr is host:port with the scheme's default port.
func canonicalAddr(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if scheme == "https" {
		return net.JoinHostPort(host, "443")
	}
	return net.JoinHostPort(host, "80")
}

// h1Conn is one upstream HTTP/1.1 connection of the fast path.
type h1Conn struct {
	key   string
	conn  net.Conn
	limit *limitedReader
	br    *bufio.Reader
	bw    *bufio.Writer
	// reused tells whether a request was sent on it before the current one.
	reused    bool
	idleTimer *time.Timer
	closeOnce sync.Once
}

func (c *h1Conn) close() { c.closeOnce.Do(func() { c.conn.Close() }) }

// errNoAnswer marks a connection that failed before the first byte of an
// answer.
var errNoAnswer = errors.New("upstream closed the connection without answering")

// aLongTimeAgo is a deadline that makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes req and reads the response head. The response body
// reads from the connection; reading it to the end gives the connection
// back to u.
func (c *h1Conn) roundTrip(u *Upstream, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%w (%w)", err, cerr)
		}
		return nil, err
	}

	// A write error may come from an upstream that answered early (413
	// on a large body, say) and closed: its answer is still worth reading.
	werr := req.Write(c.bw)
	if werr == nil {
		werr = c.bw.Flush()
	}
	if werr != nil && c.reused {
		return fail(fmt.Errorf("%w: %w", errNoAnswer, werr))
	}

	headerTimeout := u.ResponseHeaderTimeout
	if werr != nil {
		headerTimeout = 50 * time.Millisecond
	}
	if headerTimeout > 0 {
		c.setReadDeadline(ctx, time.Now().Add(headerTimeout))
	}
	c.limit.n = u.MaxResponseHeaderBytes
	if c.limit.n <= 0 {
		c.limit.n = 1 << 20
	}
	if _, err := c.br.Peek(1); err != nil {
		if werr != nil {
			return fail(werr)
		}
		return fail(fmt.Errorf("%w: %w", errNoAnswer, err))
	}
	var resp *http.Response
	for {
		var err error
		if resp, err = http.ReadResponse(c.br, req); err != nil {
			if c.limit.n <= 0 {
				err = fmt.Errorf("upstream response headers exceed %d bytes", u.MaxResponseHeaderBytes)
			}
			return fail(err)
		}
		// Informational answers (103 Early Hints) precede the real one.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("upstream switched protocols on a request that did not ask to"))
	}
	c.limit.n = math.MaxInt64
	if headerTimeout > 0 {
		c.setReadDeadline(ctx, time.Time{})
	}

	// A connection is reused only when the exchange ended cleanly: the
	// body read to its end, both sides willing, and the request written.
	reuse := werr == nil && !resp.Close && !req.Close &&
		(resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0)
	if resp.Body == http.NoBody {
		c.release(u, stop, reuse)
		return resp, nil
	}
	resp.Body = &h1Body{body: resp.Body, c: c, u: u, stop: stop, reuse: reuse}
	return resp, nil
}

// setReadDeadline sets the read deadline without undoing a cancellation:
// context.AfterFunc may have set the past deadline just before.
func (c *h1Conn) setReadDeadline(ctx context.Context, t time.Time) {
	_ = c.conn.SetReadDeadline(t)
	if ctx.Err() != nil {
		_ = c.conn.SetDeadline(aLongTimeAgo)
	}
}

// release gives c back to u when reuse holds and the context did not cut
// it, and closes it otherwise.
func (c *h1Conn) release(u *Upstream, stop func() bool, reuse bool) {
	if stop() && reuse {
		u.put(c)
		return
	}
	c.close()
}

// alive tells whether an idle connection still looks usable: the upstream
// has neither closed it nor sent anything (an idle HTTP/1.1 connection
// must not have data waiting).
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	return peekAlive(c.conn)
}

// h1Body is a fast-path response body. Reading it to the end gives the
// connection back; closing it early closes the connection.
type h1Body struct {
	body  io.ReadCloser
	c     *h1Conn
	u     *Upstream
	stop  func() bool
	reuse bool
	done  atomic.Bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

func (b *h1Body) finish(complete bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	b.c.release(b.u, b.stop, complete && b.reuse)
}

// limitedReader bounds what the response head may read; the limit is
// lifted for the body.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("upstream response headers too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// bufferPool recycles the 32 KiB copy buffers of httputil.ReverseProxy.
type bufferPool struct{ p sync.Pool }

// sharedBufferPool serves every route and mode.
var sharedBufferPool = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(p []byte) { b.p.Put(&p) }
