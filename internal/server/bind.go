package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/proxy"
)

// listener is a bound listener and the server for it.
type listener struct {
	name string
	ln   net.Listener
	srv  server
}

// server is what serves a listener: an *http.Server, or the forward
// proxy, which also serves the connections it intercepts.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// bind listens on every configured address (internal/listen: host:port,
// unix:/path, or the socket systemd passed for it): the routes' reverse
// listeners and the forward proxy, and the admin listener (nil when its
// address is empty, which only exec sets). Sockets systemd passed that no
// listener took are closed and are an error. On an error nothing stays
// bound.
func (s *Server) bind() (routeLns []*listener, adminLn *listener, err error) {
	defer func() {
		if unclaimed := s.opts.Sockets.CloseUnclaimed(); err == nil && unclaimed != nil {
			err = unclaimed
		}
		if err != nil {
			for _, l := range append(routeLns, adminLn) {
				if l != nil {
					l.ln.Close()
				}
			}
			routeLns, adminLn = nil, nil
		}
	}()
	for _, r := range s.routes {
		if r.cfg.Listen == "" {
			continue
		}
		ln, err := s.listen(r.cfg.Listen, "reverse-"+r.cfg.Name, r.cfg.ListenMode)
		if err != nil {
			return routeLns, nil, fmt.Errorf("route %s: listen on %s (%sLISTEN): %w", r.cfg.Name, r.cfg.Listen, r.cfg.Prefix, err)
		}
		h := s.gated(r, edge.ViaReverse, proxy.NewReverse(r.route, s.transport, s.metrics, s.log.Named("proxy")))
		h = s.guard(ln, "route "+r.cfg.Name, r.cfg.Name, h)
		routeLns = append(routeLns, newListener("route "+r.cfg.Name, ln, h, s.log.Named("proxy")))
	}
	if s.forward != nil {
		ln, err := s.listen(s.cfg.ForwardAddr, "forward", listen.DefaultMode)
		if err != nil {
			return routeLns, nil, fmt.Errorf("forward proxy: listen on %s (CREDPROXY_FORWARD_ADDR): %w", s.cfg.ForwardAddr, err)
		}
		routeLns = append(routeLns, &listener{name: "forward", ln: ln, srv: s.forward})
	}
	if s.cfg.AdminAddr != "" {
		ln, err := s.listen(s.cfg.AdminAddr, "admin", listen.DefaultMode)
		if err != nil {
			return routeLns, nil, fmt.Errorf("admin: listen on %s (CREDPROXY_ADMIN_ADDR): %w", s.cfg.AdminAddr, err)
		}
		adminLn = newListener("admin", ln, s.guard(ln, "admin", "", s.admin), s.log.Named("admin"))
	}
	return routeLns, adminLn, nil
}

// listen binds addr for the listener systemd would name name
// (FileDescriptorName=), or takes the socket systemd passed for it. A
// unix socket it creates gets mode: a route's LISTEN_MODE
// (config.Route.ListenMode), listen.DefaultMode (0660) for the admin and
// forward listeners, which have no mode setting.
func (s *Server) listen(addr, name string, mode os.FileMode) (net.Listener, error) {
	return listen.Listen(addr, listen.Options{Name: name, Mode: mode, Sockets: s.opts.Sockets})
}

// newListener is a listener serving h, whose requests carry the caller a
// unix socket learnt (listen.ConnContext, listen.PeerFrom).
func newListener(name string, ln net.Listener, h http.Handler, log *zap.Logger) *listener {
	srv := proxy.NewServer(h, log)
	srv.ConnContext = listen.ConnContext
	return &listener{name: name, ln: ln, srv: srv}
}

// addrString writes a bound address as the configuration does: host:port,
// or unix:/path.
func addrString(a net.Addr) string {
	if a.Network() == "unix" {
		return listen.UnixPrefix + a.String()
	}
	return a.String()
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
		Log: s.log.Named("edge"), Metrics: s.edge, OnRefused: s.auditBrowser(name),
	}
}
