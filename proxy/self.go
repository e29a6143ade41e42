package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"go.uber.org/zap"
)

// errSelf is returned when a connection would reach one of credproxy's own
// listeners through the forward proxy.
var errSelf = errors.New(selfRefusal)

// selfAddrs is the set of credproxy's own listener addresses. It is
// written while the listeners are bound and read on every tunnel or
// plain request to a host of no route.
//
// A listener bound to an unspecified address (0.0.0.0, ::) is reached at
// every address of the machine, which only the interface list tells. When
// that list cannot be had (systemd's RestrictAddressFamilies without
// AF_NETLINK, a sandbox), the guard fails closed: every destination on
// such a listener's port counts as the listener. Refusing a remote
// service that happens to use the same port is the lesser harm; tunnelling
// a script into the admin or a reverse listener, past their local-caller
// guards, is the greater.
type selfAddrs struct {
	mu    sync.RWMutex
	addrs []*net.TCPAddr
	// interfaceAddrs lists the machine's addresses; nil means
	// net.InterfaceAddrs. A seam for tests to make the listing fail.
	interfaceAddrs func() ([]net.Addr, error)
	// log receives the one warning when the listing fails; nil logs
	// nothing.
	log *zap.Logger
	// listFailed makes that warning one per process, not one per
	// connection.
	listFailed sync.Once
}

func (s *selfAddrs) add(a net.Addr) {
	if ta, ok := a.(*net.TCPAddr); ok {
		s.mu.Lock()
		s.addrs = append(s.addrs, ta)
		s.mu.Unlock()
	}
}

// is reports whether ip:port is one of the listeners. A listener bound to
// an unspecified address (0.0.0.0, ::) is reached at every local address,
// and, when those cannot be listed, at every address (see selfAddrs).
func (s *selfAddrs) is(ip net.IP, port int) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, a := range s.addrs {
		if a.Port != port {
			continue
		}
		if a.IP.Equal(ip) || (a.IP.IsUnspecified() && s.isLocalIP(ip)) {
			return true
		}
	}
	return false
}

// isSelfHost reports whether hostport names a listener by an IP address or
// as localhost. Other names are caught when dialled (guard).
func (s *selfAddrs) isSelfHost(hostport string) bool {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		host, portStr = hostport, "80"
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return s.is(ip, port)
	}
	if host == "localhost" || host == "localhost." {
		return s.is(net.IPv4(127, 0, 0, 1), port) || s.is(net.IPv6loopback, port)
	}
	return false
}

// guard wraps dial so that a connection that reached one of the listeners,
// by whatever name, is closed before a byte is sent on it.
func (s *selfAddrs) guard(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok && s.is(ra.IP, ra.Port) {
			c.Close()
			return nil, fmt.Errorf("%s: %w", addr, errSelf)
		}
		return c, nil
	}
}

// isLocalIP reports whether ip is a loopback address or one of this
// machine's interface addresses; true when the addresses cannot be listed,
// so that the guard fails closed.
func (s *selfAddrs) isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	list := s.interfaceAddrs
	if list == nil {
		list = net.InterfaceAddrs
	}
	addrs, err := list()
	if err != nil {
		s.listFailed.Do(func() {
			if s.log != nil {
				s.log.Warn("cannot list this machine's addresses: every destination on the port of a listener bound to 0.0.0.0 or :: is refused as credproxy's own "+
					"(under systemd, allow AF_NETLINK in RestrictAddressFamilies)", zap.Error(err))
			}
		})
		return true
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
