package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
)

// errStrayAnswer fails an upstream connection on which bytes arrived
// while no request was using it. net/http then sends an idempotent
// request again on a new connection, or the client gets 502.
var errStrayAnswer = errors.New("upstream sent bytes on an idle connection (an answer to no request); connection dropped")

// guardedConn is an HTTP/1.1 upstream connection, on the plaintext side
// of TLS (a stray answer arrives as TLS records: only the plaintext is
// bytes of HTTP, and tls.Conn returns at most one record per Read, so the
// stray answer, sent by its own write, comes in a Read of its own). The
// requests that use it say when they take it (GotConn) and when
// net/http puts it back in the pool (PutIdleConn), both through
// httptrace (watchConn). Bytes that a Read returns while it sits in the
// pool are an answer to no request: the Read fails instead, and so does
// any later Write, so that they never become the next request's answer.
//
// This is the one check net/http cannot make: its read loop looks for
// such bytes only once it is back at the top of its loop, after the
// connection is already in the pool, and a request that takes the
// connection in between gets them as its answer (golang/go#31259 is the
// same race seen from the other side). What remains: bytes the read loop
// had already buffered with the previous answer (the same TLS record),
// and a Read that returns after the next request took the connection.
type guardedConn struct {
	net.Conn
	// mu guards the state below; Read (net/http's read loop, or the
	// caller reading a body) and the trace hooks of a request run on
	// different goroutines.
	mu sync.Mutex
	// inUse: a request took the connection and it is not back in the
	// pool; gen counts the requests, so that a late PutIdleConn of one
	// request cannot mark idle a connection the next one already took.
	inUse bool
	gen   uint64
	stray bool
}

func (c *guardedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		idle := !c.inUse
		c.stray = c.stray || idle
		c.mu.Unlock()
		if idle {
			c.Conn.Close()
			return 0, errStrayAnswer
		}
	}
	return n, err
}

func (c *guardedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	stray := c.stray
	c.mu.Unlock()
	if stray {
		return 0, errStrayAnswer
	}
	return c.Conn.Write(p)
}

// take marks the connection in use by a request, and returns the
// request's number.
func (c *guardedConn) take() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.inUse = true
	return c.gen
}

// release marks the connection idle, unless a later request took it.
func (c *guardedConn) release(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.inUse = false
	}
}

// connWatch is one request's view of its upstream connection.
type connWatch struct {
	trace httptrace.ClientTrace
	conn  *guardedConn
	gen   uint64
}

func (w *connWatch) gotConn(info httptrace.GotConnInfo) {
	if c, ok := info.Conn.(*guardedConn); ok {
		w.conn, w.gen = c, c.take()
	}
}

func (w *connWatch) putIdleConn(err error) {
	if err == nil && w.conn != nil {
		w.conn.release(w.gen)
	}
}

// watchConn returns req with its connection watched.
func watchConn(req *http.Request) *http.Request {
	w := &connWatch{}
	w.trace.GotConn, w.trace.PutIdleConn = w.gotConn, w.putIdleConn
	return req.WithContext(httptrace.WithClientTrace(req.Context(), &w.trace))
}

// guardDials makes t's connections guardedConns: plain ones (routes with
// ALLOW_INSECURE_UPSTREAM) as dialled, TLS ones once the handshake is
// done here, with t's TLS config offering protos. A connection that
// negotiated HTTP/2 is returned as the *tls.Conn net/http needs to speak
// it: HTTP/2 frames carry their stream, and an answer to no stream is
// dropped by the protocol.
func guardDials(t *http.Transport, protos []string) {
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &guardedConn{Conn: c}, nil
	}
	base := t.TLSClientConfig.Clone()
	base.NextProtos = protos
	timeout := t.TLSHandshakeTimeout
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := base
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg = base.Clone()
			cfg.ServerName = host
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, err
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return tc, nil
		}
		return &guardedConn{Conn: tc}, nil
	}
}

// keyedPools holds at most max pools by key, dropping the least recently
// used beyond that (its idle connections closed). Its owner's mutex
// guards it.
type keyedPools struct {
	max   int
	make  func() *Transport
	pools map[string]*keyedPool
	clock uint64
}

type keyedPool struct {
	t    *Transport
	used uint64
}

func newKeyedPools(max int, make func() *Transport) *keyedPools {
	return &keyedPools{max: max, make: make, pools: map[string]*keyedPool{}}
}

func (k *keyedPools) get(key string) *Transport {
	k.clock++
	if p, ok := k.pools[key]; ok {
		p.used = k.clock
		return p.t
	}
	if len(k.pools) >= k.max {
		oldest := ""
		for key, p := range k.pools {
			if oldest == "" || p.used < k.pools[oldest].used {
				oldest = key
			}
		}
		k.pools[oldest].t.CloseIdleConnections()
		delete(k.pools, oldest)
	}
	p := &keyedPool{t: k.make(), used: k.clock}
	k.pools[key] = p
	return p.t
}

func (k *keyedPools) closeIdle() {
	for _, p := range k.pools {
		p.t.CloseIdleConnections()
	}
}
