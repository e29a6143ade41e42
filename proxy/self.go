package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// errSelf is returned when a connection would reach one of credproxy's own
// listeners through the forward proxy.
var errSelf = errors.New(selfRefusal)

// selfAddrs is the set of credproxy's own listener addresses. It is
// written while the listeners are bound and read on every tunnel or
// plain request to a host of no route.
type selfAddrs struct {
	mu    sync.RWMutex
	addrs []*net.TCPAddr
}

func (s *selfAddrs) add(a net.Addr) {
	if ta, ok := a.(*net.TCPAddr); ok {
		s.mu.Lock()
		s.addrs = append(s.addrs, ta)
		s.mu.Unlock()
	}
}

// is reports whether ip:port is one of the listeners. A listener bound to
// an unspecified address (0.0.0.0, ::) is reached at every local address.
func (s *selfAddrs) is(ip net.IP, port int) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, a := range s.addrs {
		if a.Port != port {
			continue
		}
		if a.IP.Equal(ip) || (a.IP.IsUnspecified() && isLocalIP(ip)) {
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
// machine's interface addresses.
func isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
