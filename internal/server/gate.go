package server

import (
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/internal/listen"
)

// loadKeys reads every route's CLIENT_KEYS_FILE and the forward
// listener's CREDPROXY_FORWARD_KEYS_FILE. They are re-read as they change
// (edge.Keys); a failed re-read keeps the old keys and is logged.
func (s *Server) loadKeys() error {
	for _, r := range s.routes {
		if r.cfg.ClientKeysFile == "" {
			continue
		}
		k, err := newKeys(r.cfg.ClientKeysFile, r.cfg.Prefix+"CLIENT_KEYS_FILE", s.log)
		if err != nil {
			return err
		}
		r.keys = k
	}
	if s.cfg.ForwardKeysFile != "" && s.opts.Authorize != nil {
		// exec's proxy authenticates its child by the uid or the
		// one-run key exec put in the child's proxy variables, which no
		// forward key can match: its own check is the only one.
		s.log.Warn("CREDPROXY_FORWARD_KEYS_FILE is ignored by credproxy exec: its proxy serves only its own user")
	} else if s.cfg.ForwardKeysFile != "" {
		k, err := newKeys(s.cfg.ForwardKeysFile, "CREDPROXY_FORWARD_KEYS_FILE", s.log)
		if err != nil {
			return err
		}
		s.forwardKeys = k
	}
	return nil
}

// newKeys follows a keys file named by the variable v.
func newKeys(file, v string, log *zap.Logger) (*edge.Keys, error) {
	klog := log.Named("edge").With(zap.String("variable", v))
	k, err := edge.NewKeys(edge.KeysOptions{File: file, OnReload: func(n int, err error) {
		if err != nil {
			klog.Warn("keys file not reloaded; the old keys stay in use", zap.Int("keys", n), zap.Error(err))
			return
		}
		klog.Info("keys file reloaded", zap.Int("keys", n))
	}})
	if err != nil {
		return nil, errors.New(v + ": " + err.Error())
	}
	return k, nil
}

// gated puts route r's gate (peer check, client keys, policy, audit) in
// front of h for the way in via; h itself when none of them is on, so
// that a route without them pays nothing.
func (s *Server) gated(r *liveRoute, via edge.Via, h http.Handler) http.Handler {
	g := edge.NewGate(edge.GateOptions{
		Route: r.cfg.Name, Via: via, Keys: r.keys, Header: r.cfg.Header, Prefix: r.cfg.HeaderPrefix,
		Policy: r.cfg.Allow, Allow: listen.Allow{UIDs: r.cfg.AllowUIDs, GIDs: r.cfg.AllowGIDs},
		Metrics: s.edge, Auditor: s.audit, Log: s.log.Named("edge"),
	})
	if !g.Enabled() && (via == edge.ViaReverse || s.forwardKeys == nil) {
		return h
	}
	return g.Wrap(h)
}

// forwardVia is how the forward proxy's requests are audited: exec's
// ephemeral proxy (the only one with an Authorize hook) or the forward
// listener.
func (s *Server) forwardVia() edge.Via {
	if s.opts.Authorize != nil {
		return edge.ViaExec
	}
	return edge.ViaForward
}

// forwardGuard is the forward proxy's Guard: a route host's requests meet
// the browser guard, then the route's gate.
func (s *Server) forwardGuard(proxied *edge.Browser) func(string, http.Handler) http.Handler {
	byName := map[string]*liveRoute{}
	for _, r := range s.routes {
		byName[r.cfg.Name] = r
	}
	via := s.forwardVia()
	return func(route string, next http.Handler) http.Handler {
		if r, ok := byName[route]; ok {
			next = s.gated(r, via, next)
		}
		return proxied.Proxied(route, next)
	}
}

// errForwardKey refuses a caller of the forward listener without one of
// CREDPROXY_FORWARD_KEYS_FILE's keys.
var errForwardKey = errors.New("no valid key in Proxy-Authorization (CREDPROXY_FORWARD_KEYS_FILE): use HTTPS_PROXY=http://NAME:KEY@host:port")

// forwardAuthorize is the forward proxy's caller check: exec's
// (Options.Authorize), or the forward keys (never both: loadKeys leaves
// the forward keys off under exec).
func (s *Server) forwardAuthorize() func(*http.Request) error {
	keys := s.forwardKeys
	if keys == nil {
		return s.opts.Authorize
	}
	via := s.forwardVia()
	return func(r *http.Request) error {
		if _, ok := forwardKeyName(keys, r); ok {
			return nil
		}
		s.edge.Denied("", string(edge.ClientKeyRequired))
		ev := edge.Event{Time: time.Now(), Via: via, Caller: r.RemoteAddr, Method: r.Method, Host: r.Host,
			Path: r.URL.EscapedPath(), Status: http.StatusProxyAuthRequired, Decision: edge.ClientKeyRequired}
		if p, ok := listen.PeerFrom(r.Context()); ok && p.Known {
			ev.Peer = edge.Peer{Known: true, UID: uint32(p.UID), GID: uint32(p.GID), PID: int32(p.PID)}
		}
		s.audit.Record(ev)
		return errForwardKey
	}
}

// forwardIdentify names a forward listener's caller by its key's name.
func (s *Server) forwardIdentify() func(*http.Request) string {
	if s.forwardKeys == nil {
		return nil
	}
	return func(r *http.Request) string {
		name, _ := forwardKeyName(s.forwardKeys, r)
		return name
	}
}

func forwardKeyName(keys *edge.Keys, r *http.Request) (string, bool) {
	key, ok := edge.PresentedProxyKey(r.Header)
	if !ok {
		return "", false
	}
	return keys.Lookup(key)
}

// auditBrowser records the browser guard's refusals of requests to a
// route in the audit log; nil when auditing is off. listener is the
// guard's listener name: "forward" for the forward proxy's.
func (s *Server) auditBrowser(listener string) func(*http.Request, string, int) {
	if s.cfg.AuditLog.Kind == edge.AuditOff {
		return nil
	}
	via := edge.ViaReverse
	if listener == "forward" {
		via = s.forwardVia()
	}
	return func(r *http.Request, route string, status int) {
		ev := edge.Event{Time: time.Now(), Route: route, Via: via, Caller: r.RemoteAddr, Method: r.Method, Host: r.Host,
			Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Status: status, Decision: edge.BrowserRequestRefused}
		if p, ok := listen.PeerFrom(r.Context()); ok && p.Known {
			ev.Peer = edge.Peer{Known: true, UID: uint32(p.UID), GID: uint32(p.GID), PID: int32(p.PID)}
		}
		s.audit.Record(ev)
	}
}
