package main

import (
	"net"
	"sync"
	"time"
)

// relay is a TCP relay on loopback standing in for a wide-area link to
// the upstream: every byte, in each direction, arrives half the round
// trip after it was sent, and so does the connection itself.
//
// A client's connect to the relay completes at once (the kernel accepts
// on loopback), so the relay charges the TCP handshake in its place: it
// connects onward one way after accepting (the SYN reaching the far
// side), and sends nothing of the client's before a whole round trip has
// passed since the accept (the SYN-ACK coming back, after which a real
// client could first send), plus the one way its bytes then travel. A new
// connection's first answer therefore arrives two round trips after the
// connect, as over a real link: one for TCP, one for the request. There
// is no bandwidth limit and no loss; latency is the only difference to a
// local call.
type relay struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	wg     sync.WaitGroup

	// mu guards conns and closed: close ends every connection in flight.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startRelay listens on a free loopback port and relays each connection
// to target with rtt/2 of delay each way.
func startRelay(target string, rtt time.Duration) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, target: target, oneWay: rtt / 2, conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.serve)
	return r, nil
}

// addr is the relay's listening address.
func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Go(func() { r.handle(c) })
	}
}

// close stops accepting, ends every relayed connection and waits for
// their goroutines.
func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// track records c so that close can end it; false once the relay is
// closed (c is then closed).
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// handle relays one client connection, handshake delay included.
func (r *relay) handle(client net.Conn) {
	accepted := time.Now()
	if !r.track(client) {
		return
	}
	defer r.untrack(client)
	// The client's SYN is on its way: the far side hears of the
	// connection one way later.
	time.Sleep(r.oneWay)
	up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
	if err != nil || !r.track(up) {
		return
	}
	defer r.untrack(up)
	var wg sync.WaitGroup
	// The client could only have sent once the SYN-ACK was back, a round
	// trip after its connect: what it sent earlier leaves then.
	wg.Go(func() { delayCopy(up, client, r.oneWay, accepted.Add(2*r.oneWay)) })
	wg.Go(func() { delayCopy(client, up, r.oneWay, time.Time{}) })
	wg.Wait()
}

// chunk is bytes read from one side and when they are due at the other;
// nil bytes stand for the end of the stream.
type chunk struct {
	b  []byte
	at time.Time
}

// delayCopy copies src to dst, writing each read delay after it was read
// (or after notBefore, when later). The end of src is passed on as a
// half close, delayed the same, so each side sees the other's FIN when it
// would over the link.
func delayCopy(dst, src net.Conn, delay time.Duration, notBefore time.Time) {
	// The buffer bounds what is in flight each way (64 reads of up to
	// 32 KiB); a full buffer stops reading, as a full window would.
	ch := make(chan chunk, 64)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			sent := time.Now()
			if sent.Before(notBefore) {
				sent = notBefore
			}
			if n > 0 {
				ch <- chunk{buf[:n], sent.Add(delay)}
			}
			if err != nil {
				ch <- chunk{nil, sent.Add(delay)}
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if c.b == nil {
			closeWrite(dst)
			break
		}
		if _, err := dst.Write(c.b); err != nil {
			dst.Close()
			src.Close()
			break
		}
	}
	for range ch {
		// Drain, so the reader never blocks on a full buffer.
	}
}

// closeWrite half-closes a TCP connection, or closes any other.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	c.Close()
}
