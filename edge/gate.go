package edge

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/internal/jsonerror"
	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/internal/reqinfo"
)

// GateOptions configure NewGate: a route's edge checks on one way in.
type GateOptions struct {
	// Route is the route's name (logs, metrics, audit, error bodies).
	Route string
	// Via is the way in the gate guards (ViaReverse, ViaForward, ViaExec).
	Via Via
	// Keys are the route's client keys (CLIENT_KEYS_FILE); nil: off.
	Keys *Keys
	// Header and Prefix are where the route's clients send their token
	// (the route's HEADER and HEADER_PREFIX): a client key is read there.
	Header, Prefix string
	// Policy is the route's ALLOW; nil or empty: off.
	Policy *Policy
	// Allow restricts the route to unix-socket callers (ALLOW_UIDS,
	// ALLOW_GIDS); the zero Allow is off.
	Allow listen.Allow
	// Metrics counts refusals; nil counts nothing.
	Metrics *Metrics
	// Auditor records one event per request; nil or off: none.
	Auditor *Auditor
	// Log receives refusals at info; nil: none.
	Log *zap.Logger
	// OnIdentity, when set, is called with an allowed request and its
	// caller's identity ("key:NAME", "uid:N"), and returns the request to
	// pass on. The gate already puts the identity in the request's
	// reqinfo.Info, which the proxy reads to pool by identity.
	OnIdentity func(*http.Request, string) *http.Request
}

// Gate is a route's edge on one way in: it checks the caller's unix
// socket peer, its client key and the request policy, in that order and
// before any token is read, and records each request in the audit log.
// Refusals are answered with a JSON body, counted in
// credproxy_requests_denied_total and logged at info (with a key's name,
// never a key).
type Gate struct {
	o     GateOptions
	allow bool
	audit bool
	log   *zap.Logger
	// challenge is the WWW-Authenticate value of a 401 ("" for a header
	// other than Authorization).
	challenge string
}

// NewGate returns the gate for o.
func NewGate(o GateOptions) *Gate {
	g := &Gate{o: o, allow: len(o.Allow.UIDs) > 0 || len(o.Allow.GIDs) > 0, log: o.Log}
	g.audit = o.Auditor != nil && o.Auditor.q != nil
	if !o.Policy.Enabled() {
		g.o.Policy = nil
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	if strings.EqualFold(o.Header, "Authorization") {
		scheme := o.Prefix
		if scheme == "" {
			scheme = "Bearer"
		}
		g.challenge = scheme + ` realm="credproxy", error="invalid_token"`
	}
	return g
}

// Enabled reports whether the gate does anything: a check or the audit
// log. A gate that is not enabled should not be put in front of a
// handler at all.
func (g *Gate) Enabled() bool {
	return g.allow || g.o.Keys != nil || g.o.Policy != nil || g.audit
}

// Wrap returns next behind the gate.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.serve(w, r, next)
	})
}

// call is one request's view through the gate.
type call struct {
	start time.Time
	peer  listen.Peer
	key   string
}

func (g *Gate) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	c := call{}
	if g.audit {
		c.start = time.Now()
	}
	c.peer, _ = listen.PeerFrom(r.Context())
	d, status, detail := g.check(r, &c)
	if d != Allowed {
		g.refuse(w, r, &c, d, status, detail)
		return
	}
	info := &reqinfo.Info{Identity: g.identity(r, &c)}
	r = r.WithContext(reqinfo.With(r.Context(), info))
	if info.Identity != "" && g.o.OnIdentity != nil {
		r = g.o.OnIdentity(r, info.Identity)
	}
	if !g.audit {
		next.ServeHTTP(w, r)
		return
	}
	g.serveAudited(w, r, next, &c, info)
}

// serveAudited serves an allowed request and records it: its status,
// the bytes each way, and the token the proxy sent (from info).
func (g *Gate) serveAudited(w http.ResponseWriter, r *http.Request, next http.Handler, c *call, info *reqinfo.Info) {
	aw := &auditWriter{ResponseWriter: w}
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	next.ServeHTTP(aw, r)
	if aw.status == 0 {
		aw.status = http.StatusOK
	}
	d := Allowed
	if aw.status == http.StatusServiceUnavailable && info.Token.Empty() {
		// The proxy answered 503 without sending a token: it had none.
		d = CredentialUnavailable
	}
	ev := g.event(r, c, d, aw.status)
	ev.BytesOut, ev.Token = aw.n, info.Token
	if body != nil {
		ev.BytesIn = body.n.Load()
	}
	g.o.Auditor.Record(ev)
}

// check runs the checks in order; it returns Allowed or the refusal.
func (g *Gate) check(r *http.Request, c *call) (Decision, int, string) {
	if g.allow && !g.o.Allow.Permits(c.peer) {
		return CallerNotAllowed, http.StatusForbidden, "this route serves only the users and groups in ALLOW_UIDS and ALLOW_GIDS, on its unix socket"
	}
	if g.o.Keys != nil {
		presented, ok := PresentedKey(r.Header, g.o.Header, g.o.Prefix)
		name := ""
		if ok {
			name, ok = g.o.Keys.Lookup(presented)
		}
		if !ok {
			return ClientKeyRequired, http.StatusUnauthorized, "send one of the route's client keys (CLIENT_KEYS_FILE) where its token goes: " + g.where()
		}
		c.key = name
		r.Header.Del(g.o.Header)
	}
	if d, ok := g.o.Policy.Check(r.Method, r.URL.EscapedPath()); !ok {
		return DeniedByPolicy, http.StatusForbidden, d.Reason() + " is not in the route's ALLOW list"
	}
	return Allowed, 0, ""
}

// where says where the route's client key goes, for a 401's detail.
func (g *Gate) where() string {
	if g.o.Prefix != "" {
		return g.o.Header + ": " + g.o.Prefix + " <key>"
	}
	return g.o.Header + ": <key>"
}

// identity is the caller's identity for pooling: its key's name, the
// name the forward listener authenticated it by, or its peer uid when
// the route checks peers; "" when it has none.
func (g *Gate) identity(r *http.Request, c *call) string {
	switch {
	case c.key != "":
		return "key:" + c.key
	case g.o.Via != ViaReverse:
		if name := reqinfo.Caller(r.Context()); name != "" {
			c.key = name
			return "key:" + name
		}
	}
	if g.allow && c.peer.Known {
		return "uid:" + strconv.Itoa(c.peer.UID)
	}
	return ""
}

// refuse answers a refusal, logs, counts and records it.
func (g *Gate) refuse(w http.ResponseWriter, r *http.Request, c *call, d Decision, status int, detail string) {
	g.log.Info("request refused: "+string(d),
		zap.String("route", g.o.Route), zap.String("via", string(g.o.Via)),
		zap.String("method", r.Method), zap.String("remote", r.RemoteAddr),
		zap.String("key_name", c.key), zap.Bool("peer_known", c.peer.Known), zap.Int("peer_uid", c.peer.UID))
	g.o.Metrics.Denied(g.o.Route, string(d))
	if d == ClientKeyRequired && g.challenge != "" {
		w.Header().Set("WWW-Authenticate", g.challenge)
	}
	jsonerror.Write(w, status, jsonerror.Body{Error: string(d), Route: g.o.Route, Detail: detail})
	if g.audit {
		g.o.Auditor.Record(g.event(r, c, d, status))
	}
}

// event is the audit event of a decision on r.
func (g *Gate) event(r *http.Request, c *call, d Decision, status int) Event {
	ev := Event{
		Time: c.start, Route: g.o.Route, Via: g.o.Via, Caller: r.RemoteAddr, Key: c.key,
		Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Status: status, Decision: d, Duration: time.Since(c.start),
	}
	if c.peer.Known {
		ev.Peer = Peer{Known: true, UID: uint32(c.peer.UID), GID: uint32(c.peer.GID), PID: int32(c.peer.PID)}
	}
	return ev
}

// auditWriter remembers the status and counts the body bytes written.
// Unwrap lets http.ResponseController reach Flush and Hijack.
type auditWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 || (w.status >= 100 && w.status < 200) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the request body bytes read: atomically, as the
// upstream transport may still be reading it when the handler returns.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
