package listen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultMode is a unix socket's permission bits when Options.Mode is
// zero: the owner and its group may connect (connecting needs write
// permission on the socket), nobody else.
const DefaultMode os.FileMode = 0o660

// UnixPrefix starts a unix socket address: unix:/run/credproxy/credproxy.sock.
const UnixPrefix = "unix:"

// staleProbeTimeout bounds the connect Listen makes to a socket file it
// finds at its path, to tell a live socket from one left by a killed run.
// A live one answers (the kernel completes the connect from its backlog)
// at once; a stale one refuses at once.
const staleProbeTimeout = 2 * time.Second

// Options say how Listen binds one listener.
type Options struct {
	// Name is the listener's name as credproxy calls it ("reverse-default",
	// "forward", "admin"): a socket systemd passed with this
	// FileDescriptorName= is taken when none is bound to the address.
	Name string
	// Mode is a unix socket file's permission bits (LISTEN_MODE); zero
	// means DefaultMode. Only the 0777 bits may be set. Ignored for TCP,
	// and for a socket systemd passed (its SocketMode= made the file).
	Mode os.FileMode
	// Sockets are the sockets systemd passed to the process
	// (SystemdSockets); nil binds every listener.
	Sockets *Sockets
	// TCPPeer, when set, looks up who is calling on a TCP connection at
	// Accept (credproxy exec may, for loopback callers, by the inode in
	// /proc/net/tcp), and the connections are then *Conn like a unix
	// listener's. Nil leaves TCP connections as they are: no identity.
	TCPPeer func(net.Conn) Peer
}

// Listen listens on addr: host:port (TCP) or unix:/path.sock. When
// opts.Sockets holds a socket systemd passed for it, that is returned
// instead of binding. A unix listener's connections are *Conn with the
// caller's credentials; see the package comment for the socket file.
func Listen(addr string, opts Options) (net.Listener, error) {
	network, address, err := split(addr)
	if err != nil {
		return nil, err
	}
	mode := opts.Mode
	if mode == 0 {
		mode = DefaultMode
	}
	if mode&^fs.ModePerm != 0 {
		return nil, fmt.Errorf("%s: socket mode %#o has bits beyond 0777", addr, uint32(mode))
	}
	ln := opts.Sockets.take(network, address, opts.Name)
	if ln == nil {
		switch network {
		case "unix":
			ln, err = listenUnix(address, mode)
		default:
			ln, err = net.Listen("tcp", address)
		}
		if err != nil {
			return nil, err
		}
	}
	// By what the listener is, not what was configured: a socket taken by
	// name may be of the other kind.
	switch {
	case ln.Addr().Network() == "unix":
		return &peerListener{ln: ln, peer: unixPeer}, nil
	case opts.TCPPeer != nil:
		return &peerListener{ln: ln, peer: opts.TCPPeer}, nil
	}
	return ln, nil
}

// split parses a listen address into a network and an address for it. A
// unix socket's path must be absolute: a relative one would depend on the
// working directory, and an abstract one (@name) has no file and so no
// mode: any process in the network namespace could connect.
func split(addr string) (network, address string, err error) {
	path, ok := strings.CutPrefix(addr, UnixPrefix)
	if !ok {
		return "tcp", addr, nil
	}
	if !strings.HasPrefix(path, "/") {
		return "", "", fmt.Errorf("%s: a unix socket address is unix: and an absolute path", addr)
	}
	return "unix", path, nil
}

// ParseMode parses LISTEN_MODE: octal permission bits such as 0660 or 660.
func ParseMode(s string) (os.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n&^uint64(fs.ModePerm) != 0 || n == 0 {
		return 0, fmt.Errorf("%q is not a socket mode: octal permission bits from 1 to 0777, such as 0660", s)
	}
	return os.FileMode(n), nil
}

// listenUnix binds a unix socket at path with the permission bits mode,
// after clearing a stale socket file from the path.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := clearStale(path); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: modeBeforeBind(mode)}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", UnixPrefix, path, err)
	}
	// The umask may have taken bits away: put them back. A caller that
	// connected meanwhile had the permission of bits no looser than mode,
	// and nothing has been accepted yet.
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s%s: set the socket's mode: %w", UnixPrefix, path, err)
	}
	return ln, nil
}

// modeBeforeBind is a net.ListenConfig.Control that sets a unix socket's
// mode before bind: Linux makes the socket's file with the socket inode's
// mode less the umask, so the file is never looser than mode, even for
// the moment before a chmod.
func modeBeforeBind(mode os.FileMode) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = unix.Fchmod(int(fd), uint32(mode)) }); cerr != nil {
			return cerr
		}
		return err
	}
}

// clearStale makes path free for a new socket: nothing there, or a socket
// file nobody answers on (left by a killed run), which is removed. A
// socket that answers, anything that is not a socket, and a socket whose
// state cannot be told are errors, and stay.
//
// Two processes starting at the same moment on one path can both find a
// stale file and both remove it; one of the binds then fails (the address
// is in use), or, in a narrower window, the later removal takes the
// earlier process's new file away. Run one credproxy per socket path.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s%s: %w", UnixPrefix, path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s%s: the path exists and is not a socket (%v); credproxy never removes it", UnixPrefix, path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("another process is listening on %s%s", UnixPrefix, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s%s: a socket file is there and connecting to it, to see whether it is in use, failed: %w", UnixPrefix, path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s%s: remove the stale socket file: %w", UnixPrefix, path, err)
	}
	return nil
}
