package server

import (
	"fmt"
	"net"
	"net/http"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/proxy"
)

// listener is a bound listener and the server for it.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

// bind listens on every configured address: the routes' reverse
// listeners and the forward proxy, and the admin listener (nil when its
// address is empty, which only exec sets). On an error nothing stays bound.
func (s *Server) bind() (routeLns []*listener, adminLn *listener, err error) {
	closeAll := func() {
		for _, l := range routeLns {
			l.ln.Close()
		}
	}
	for _, r := range s.routes {
		if r.cfg.Listen == "" {
			continue
		}
		ln, err := net.Listen("tcp", r.cfg.Listen)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("route %s: listen on %s (%sLISTEN): %w", r.cfg.Name, r.cfg.Listen, r.cfg.Prefix, err)
		}
		h := s.guard(ln, "route "+r.cfg.Name, r.cfg.Name, proxy.NewReverse(r.route, s.transport, s.metrics, s.log.Named("proxy")))
		routeLns = append(routeLns, &listener{name: "route " + r.cfg.Name, ln: ln, srv: proxy.NewServer(h, s.log.Named("proxy"))})
	}
	if s.forward != nil {
		ln, err := net.Listen("tcp", s.cfg.ForwardAddr)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("forward proxy: listen on %s (CREDPROXY_FORWARD_ADDR): %w", s.cfg.ForwardAddr, err)
		}
		routeLns = append(routeLns, &listener{name: "forward", ln: ln, srv: proxy.NewServer(s.guard(ln, "forward", "", s.forward), s.log.Named("proxy"))})
	}
	if s.cfg.AdminAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.AdminAddr)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("admin: listen on %s (CREDPROXY_ADMIN_ADDR): %w", s.cfg.AdminAddr, err)
		}
		adminLn = &listener{name: "admin", ln: ln, srv: proxy.NewServer(s.guard(ln, "admin", "", s.admin), s.log.Named("admin"))}
	}
	return routeLns, adminLn, nil
}

// guard puts the browser guard in front of the handler of the listener
// ln, named name in logs; route labels its refusals ("" for the admin
// and forward listeners). Whether Host is checked depends on the address
// ln is bound to, which is known only now. The forward listener passes
// proxy requests (CONNECT, absolute form) on: their Host is the target,
// and those to a route host meet the forward proxy's own guard.
func (s *Server) guard(ln net.Listener, name, route string, h http.Handler) http.Handler {
	return edge.NewBrowser(s.browserOptions(name, route, edge.IsLoopback(ln.Addr()), name == "forward")).Wrap(h)
}

// browserOptions are the browser guard's options for a listener.
func (s *Server) browserOptions(name, route string, loopback, proxyListener bool) edge.BrowserOptions {
	return edge.BrowserOptions{
		Listener: name, Route: route, Loopback: loopback, ProxyListener: proxyListener,
		AllowedHosts: s.cfg.AllowedHosts, AllowedOrigins: s.cfg.AllowedOrigins,
		Log: s.log.Named("edge"), Metrics: s.edge,
	}
}
