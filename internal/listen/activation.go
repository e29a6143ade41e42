package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// Sockets are the listening sockets systemd passed to the process, for
// Listen to take instead of binding. A nil *Sockets holds none.
//
// Each is taken by the first Listen whose address it is bound to; one
// bound elsewhere is taken by the first Listen whose Options.Name is its
// FileDescriptorName=. Addresses first, because they say where callers
// connect and need no naming in the unit; names for what addresses cannot
// compare: a host name (other than localhost), port 0, a path reached
// through another directory's symlink that the two paths do not share.
// A socket taken by name is served at its own address, which Addr reports.
type Sockets struct {
	// mu guards the taken flags: Listen is called from one goroutine at
	// start, but nothing stops a caller from binding in parallel, and a
	// socket must go to one listener only.
	mu    sync.Mutex
	socks []*passed
}

// passed is one socket systemd passed.
type passed struct {
	// name is its FileDescriptorName=, or LISTEN_FD_<fd> without one.
	name  string
	ln    net.Listener
	taken bool
}

// SystemdSockets takes the sockets systemd passed to this process (nil
// when there are none: LISTEN_PID is another process's or unset), through
// go-systemd's activation.Files.
//
// It is the one function of the package that reads the process
// environment rather than being handed it: activation.Files reads
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES with os.Getenv, and has no
// form that takes them. It also unsets them (unsetEnv true), as
// sd_listen_fds(3) advises, so that a command credproxy exec starts never
// reads them as its own; the descriptors are close-on-exec for the same
// reason. Call it once, at start: a second call finds nothing.
func SystemdSockets() (*Sockets, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, nil
	}
	return NewSockets(files)
}

// NewSockets makes Sockets of listening sockets' files, named by
// f.Name(). It takes the files over (each is closed, its socket kept in a
// net.Listener). A file that is not a listening stream socket is an
// error, and then every socket is closed: a socket unit with
// ListenDatagram= or Accept=yes is not one credproxy can serve.
func NewSockets(files []*os.File) (*Sockets, error) {
	s := &Sockets{}
	var errs []error
	for _, f := range files {
		ln, err := fileListener(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("systemd socket %s: %w", f.Name(), err))
			continue
		}
		s.socks = append(s.socks, &passed{name: f.Name(), ln: ln})
	}
	if err := errors.Join(errs...); err != nil {
		for _, p := range s.socks {
			p.ln.Close()
		}
		return nil, err
	}
	return s, nil
}

// fileListener makes a net.Listener of f, a socket that must be a
// stream socket in the listening state.
func fileListener(f *os.File) (net.Listener, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var listening, stream int
	var optErr error
	err = raw.Control(func(fd uintptr) {
		listening, optErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if optErr == nil {
			stream, optErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		}
	})
	switch {
	case err != nil:
		return nil, err
	case optErr != nil:
		return nil, fmt.Errorf("not a socket: %w", optErr)
	case stream != unix.SOCK_STREAM || listening != 1:
		return nil, errors.New("not a listening stream socket (credproxy needs ListenStream= without Accept=yes)")
	}
	return net.FileListener(f)
}

// take returns the passed socket for a listener on address (of network
// tcp or unix) named name, and marks it taken; nil when there is none.
func (s *Sockets) take(network, address, name string) net.Listener {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.socks {
		if !p.taken && sameAddr(network, address, p.ln.Addr()) {
			p.taken = true
			return p.ln
		}
	}
	for _, p := range s.socks {
		if !p.taken && name != "" && p.name == name {
			p.taken = true
			return p.ln
		}
	}
	return nil
}

// CloseUnclaimed closes the passed sockets no Listen took, and returns an
// error naming each (nil when every one was taken): systemd keeps such a
// socket open, and its callers would wait for an answer that never comes.
// Call it once every listener is made, and on a failed start to close
// what was passed.
func (s *Sockets) CloseUnclaimed() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var unclaimed []string
	for _, p := range s.socks {
		if p.taken {
			continue
		}
		p.taken = true
		p.ln.Close()
		unclaimed = append(unclaimed, fmt.Sprintf("%s (%s)", p.name, describe(p.ln.Addr())))
	}
	if len(unclaimed) == 0 {
		return nil
	}
	return fmt.Errorf("systemd passed sockets no listener is configured for: %s; set a listener's address to the socket's, or its FileDescriptorName= to the listener's name", strings.Join(unclaimed, ", "))
}

// describe writes an address as credproxy's settings do.
func describe(a net.Addr) string {
	if a.Network() == "unix" {
		return UnixPrefix + a.String()
	}
	return a.String()
}

// sameAddr reports whether the configured address (network tcp or unix)
// is the one a passed socket is bound to.
func sameAddr(network, address string, bound net.Addr) bool {
	switch b := bound.(type) {
	case *net.UnixAddr:
		return network == "unix" && samePath(address, b.Name)
	case *net.TCPAddr:
		return network == "tcp" && sameTCP(address, b)
	}
	return false
}

// samePath: the same path, or two paths to the same file (/var/run and
// /run are often one directory).
func samePath(a, b string) bool {
	if b == "" || b[0] == '@' {
		return false
	}
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// sameTCP: the same port (never 0, which asks for any) and the same host,
// where any unspecified address (an empty host, 0.0.0.0, ::) is all
// interfaces, and localhost any loopback address. Other host names are
// not resolved: they match by name only.
func sameTCP(address string, b *net.TCPAddr) bool {
	host, port, err := net.SplitHostPort(address)
	if err != nil || port == "0" {
		return false
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil || p != b.Port {
		return false
	}
	switch host {
	case "":
		return b.IP.IsUnspecified()
	case "localhost":
		return b.IP.IsLoopback()
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	return ip.Equal(b.IP) || ip.IsUnspecified() && b.IP.IsUnspecified()
}
