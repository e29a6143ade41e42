package listen

import (
	"context"
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Peer is who called on a connection, as the kernel saw it when the
// caller connected.
type Peer struct {
	// UID and GID are the caller's effective user and group ids.
	UID, GID int
	// PID is the caller's process id at connect(2): for the audit log. The
	// process may have exited since and its pid been reused, so it decides
	// nothing.
	PID int
	// Known says the fields above were learnt. False for a TCP caller,
	// and in the rare case the kernel would not say (logged by nobody:
	// such a caller is refused wherever an allow rule is set).
	Known bool
}

// Conn is a connection accepted by a Listener that learns its callers
// (every unix listener), with the caller it learnt at Accept.
type Conn struct {
	net.Conn
	// Peer is the caller, read once at Accept.
	Peer Peer
}

// NetConn returns the accepted connection itself, as crypto/tls's Conn
// does: for code that needs the *net.UnixConn or *net.TCPConn.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// CloseWrite shuts down the writing side, as the accepted connection's
// own CloseWrite does: net/http calls it, through an interface, to end a
// response cleanly, and a CONNECT tunnel (goproxy) to pass a half-close on.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CloseRead shuts down the reading side, as the accepted connection's own
// CloseRead does (a tunnel's half-close, with CloseWrite).
func (c *Conn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// peerListener wraps each accepted connection in a *Conn with its caller.
type peerListener struct {
	ln   net.Listener
	peer func(net.Conn) Peer
}

var _ net.Listener = (*peerListener)(nil)

// Accept returns the next connection, as a *Conn. A caller that cannot
// be learnt is not an error (that would stop http.Server's Serve): the
// connection comes with an unknown Peer.
func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, Peer: l.peer(c)}, nil
}

// Close closes the listener; a unix socket file Listen made is removed.
func (l *peerListener) Close() error { return l.ln.Close() }

// Addr returns the listener's address.
func (l *peerListener) Addr() net.Addr { return l.ln.Addr() }

// unixPeer reads a unix connection's caller from the kernel: SO_PEERCRED,
// the credentials the caller had at connect(2).
func unixPeer(c net.Conn) Peer {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Peer{}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return Peer{}
	}
	var (
		cred    *unix.Ucred
		credErr error
	)
	err = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || credErr != nil || cred == nil {
		return Peer{}
	}
	return Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid), Known: true}
}

// peerKey is the context key of a connection's Peer.
type peerKey struct{}

// ConnContext is for http.Server.ConnContext: it puts the caller of a
// connection accepted by a Listener that learns callers into the context
// of every request on it, for PeerFrom. It looks through wrappers with a
// NetConn method (crypto/tls's Conn, *Conn itself); for other connections
// it returns ctx as it is. To chain it with a ConnContext of your own,
// call it from yours.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		if pc, ok := c.(*Conn); ok {
			return context.WithValue(ctx, peerKey{}, pc.Peer)
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	return ctx
}

// PeerFrom returns the caller ConnContext recorded for the request's
// connection, and whether one was recorded (false: a TCP listener without
// a lookup, or a server without ConnContext). Even when recorded, the
// caller may be unknown: see Peer.Known.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}
