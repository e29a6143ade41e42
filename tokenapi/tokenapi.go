package tokenapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/jsonerror"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokencache"
)

// errorBody is the JSON body of every error credproxy itself answers.
type errorBody = jsonerror.Body

func writeError(w http.ResponseWriter, status int, body errorBody) { jsonerror.Write(w, status, body) }

// TokenPath is where the token API answers: GET TokenPath + route. The
// admin listener mounts NewTokenHandler here.
const TokenPath = "/v1/token/"

// Response is the token API's answer. It is the only place a token
// ever leaves credproxy other than in a proxied request's header.
type Response struct {
	AccessToken string `json:"access_token"`
	// TokenType is the route's TokenType.
	TokenType string `json:"token_type"`
	// ExpiresIn is the whole seconds left; 0 with ExpiresAt omitted for a
	// token without expiry (static).
	ExpiresIn int64     `json:"expires_in"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Principal and Identity are the route's identity fingerprints
	// (internal/identity): who the token is issued to, without and with
	// the credential. `credproxy token` takes the token only when they
	// match its own configuration's. Omitted when the route has none or
	// they cannot be computed (a secret file unreadable): no client may
	// then take the token for its own.
	Principal string `json:"principal,omitempty"`
	Identity  string `json:"identity,omitempty"`
}

// Tokens supplies a route's current token; *tokencache.Cache implements
// it. It is called concurrently by every request.
type Tokens interface {
	// Token returns a valid token, or an error when none can be had.
	Token(ctx context.Context) (exchange.Token, error)
}

// Route is a route whose token the endpoints hand out.
type Route struct {
	// Name is the route's name: the last element of the token API's
	// path, and the OAuth 2.0 endpoint's client_id.
	Name string
	// TokenType is the route's header prefix; "Bearer" when it has none
	// (Splunk's X-SF-Token takes the bare token), as OAuth 2.0 clients
	// expect a type.
	TokenType string
	// Tokens supplies the token.
	Tokens Tokens
	// Identity returns the route's identity fingerprints for the token
	// API's answer (Response.Principal and Identity); nil answers
	// none. It is called for every token handed out, concurrently. The
	// OAuth 2.0 endpoint does not use it.
	Identity func() (principal, identity string, err error)
	// ClientSecret is the client secret the OAuth 2.0 endpoint's client
	// must present (LOCAL_CLIENT_SECRET or LOCAL_CLIENT_SECRET_FILE). A
	// file is read at every request, so a rotated secret takes effect at
	// once. Unset means any secret, or none, is accepted: then the
	// caller guards alone stand between a local process and the token.
	// The token API does not use it: its callers present no secret.
	ClientSecret secret.Ref
}

// Options configures the endpoints. Both take the same Options.
type Options struct {
	// Routes are the routes whose tokens are handed out.
	Routes []Route
	// Metrics, when set, counts the requests. Nil counts nothing.
	Metrics *Metrics
	// Logger receives a line per token handed out or request refused,
	// named "tokenapi" or "oauth2" by each endpoint. Default: no logging.
	Logger *zap.Logger
	// Record, when set, receives one audit event per answer (an
	// *edge.Auditor's Record): via token_api or oauth2, the caller, the
	// status, the decision (edge.Allowed, or the refusal: an edge
	// decision where one fits, else the answer's error code) and the
	// token handed out, if any. It must not block.
	Record func(edge.Event)
}

// byName indexes routes by name.
func byName(routes []Route) map[string]*Route {
	m := make(map[string]*Route, len(routes))
	for i := range routes {
		m[routes[i].Name] = &routes[i]
	}
	return m
}

func logger(opts Options, name string) *zap.Logger {
	if opts.Logger == nil {
		return zap.NewNop()
	}
	return opts.Logger.Named(name)
}

// NewTokenHandler returns the token API, to be mounted at TokenPath:
// GET TokenPath + route answers the route's token as a Response, for
// scripts that need the token itself (CREDPROXY_TOKEN_API=true).
//
// Like a cloud metadata service it answers only requests that cannot come
// from a browser or through a proxy by accident: the header
// `Metadata: true` is required (a browser cannot add it cross-origin
// without a preflight, which is never granted), and a request with
// Via, Forwarded, X-Forwarded-*, X-Real-Ip, Origin or Sec-Fetch-* is refused, as is a
// Host that is a name other than localhost (DNS rebinding needs one).
// Every answer carries Cache-Control: no-store. The token appears in the
// response body and nowhere else: logs show its fingerprint.
func NewTokenHandler(opts Options) http.Handler {
	return &tokenAPI{routes: byName(opts.Routes), metrics: opts.Metrics, log: logger(opts, "tokenapi"), opts: opts}
}

type tokenAPI struct {
	routes  map[string]*Route
	metrics *Metrics
	log     *zap.Logger
	opts    Options
}

// tokenAnswer is the token API's answer to one request.
type tokenAnswer struct {
	status   int
	body     errorBody
	resp     *Response
	decision edge.Decision
	token    secret.Secret
}

func (t *tokenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, TokenPath)
	route := t.routes[name]
	label := ""
	if route != nil {
		label = name
	}
	start := time.Now()
	a := t.answer(r, name, route)
	status, body, resp := a.status, a.body, a.resp
	t.metrics.tokenRequest(label, status)
	t.opts.record(auditEvent(r, edge.ViaTokenAPI, start, label, status, a.decision, a.token))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if resp == nil {
		t.log.Warn("token API request refused", zap.String("route", label), zap.String("remote", r.RemoteAddr),
			zap.Int("status", status), zap.String("error", body.Error))
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET")
		}
		writeError(w, status, body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		t.log.Debug("token API: client went away", zap.Error(err))
	}
}

// answer decides the response: a token, or a status and error body.
func (t *tokenAPI) answer(r *http.Request, name string, route *Route) tokenAnswer {
	refused := func(status int, d edge.Decision, code, detail string) tokenAnswer {
		return tokenAnswer{status: status, decision: d, body: errorBody{Error: code, Route: name, Detail: detail}}
	}
	if d, reason := refuse(r); reason != "" {
		return refused(http.StatusForbidden, d, "forbidden", reason)
	}
	if r.Method != http.MethodGet {
		return refused(http.StatusMethodNotAllowed, "method_not_allowed", "method_not_allowed", "the token API answers GET only")
	}
	if route == nil || name == "" || strings.Contains(name, "/") {
		return refused(http.StatusNotFound, "unknown_route", "unknown_route", "no route of that name")
	}
	tok, err := route.Tokens.Token(r.Context())
	if err != nil {
		detail := err.Error()
		var ue *tokencache.UnavailableError
		if errors.As(err, &ue) {
			detail = ue.Detail
		}
		return refused(http.StatusServiceUnavailable, edge.CredentialUnavailable, "credential_unavailable", detail)
	}
	typ := route.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	resp := &Response{AccessToken: tok.Value.Reveal(), TokenType: typ}
	if !tok.Expiry.IsZero() {
		resp.ExpiresAt = tok.Expiry.UTC()
		resp.ExpiresIn = max(0, int64(time.Until(tok.Expiry)/time.Second))
	}
	if route.Identity != nil {
		var err error
		if resp.Principal, resp.Identity, err = route.Identity(); err != nil {
			resp.Principal, resp.Identity = "", ""
			t.log.Warn("token API: the route's identity fingerprint cannot be computed; answering without it",
				zap.String("route", name), zap.Error(err))
		}
	}
	t.log.Info("token handed out", zap.String("route", name), zap.String("remote", r.RemoteAddr),
		zap.Stringer("token", tok.Value), zap.Int64("expires_in", resp.ExpiresIn))
	return tokenAnswer{status: http.StatusOK, resp: resp, decision: edge.Allowed, token: tok.Value}
}

// refuse returns why a request may not have a token from the token API,
// and the audit log's decision, or "" when it may: it must carry the
// header Metadata: true and pass refuseCaller's guards.
func refuse(r *http.Request) (edge.Decision, string) {
	if !strings.EqualFold(r.Header.Get("Metadata"), "true") {
		return edge.CallerNotAllowed, "the header Metadata: true is required"
	}
	return refuseCaller(r)
}

// proxyHeaders are the headers, lower-cased, that proxies, load balancers
// and CDNs add to say whom they forward for, besides X-Forwarded-*.
var proxyHeaders = map[string]bool{
	"via": true, "forwarded": true, "x-forwarded": true, "x-real-ip": true, "true-client-ip": true,
	"client-ip": true, "x-client-ip": true, "cf-connecting-ip": true, "fastly-client-ip": true,
	"x-cluster-client-ip": true, "x-original-forwarded-for": true, "x-proxyuser-ip": true,
	"x-envoy-external-address": true,
}

// addedByProxy reports whether header name says the request came through
// a proxy, in any case and with '_' for '-' (a proxy may pass on a
// spelling with underscores that a later one reads as the header).
func addedByProxy(name string) bool {
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	return proxyHeaders[n] || strings.HasPrefix(n, "x-forwarded-")
}

// refuseCaller returns why a request does not come from a direct local
// caller, or "" when it does. These are the guards of every endpoint
// that hands out a token, the OAuth 2.0 one included, whose clients
// cannot add a Metadata header: no proxy on the way (Via, Forwarded,
// X-Forwarded-*, X-Real-Ip, the client-IP headers of CDNs and load
// balancers, with '_' or '-'), no browser (Origin, Sec-Fetch-*), and a
// Host that is an IP address or localhost (DNS rebinding needs a name).
// The decision is the audit log's: browser_request_refused for a browser
// or a rebinding Host, caller_not_allowed for the rest.
func refuseCaller(r *http.Request) (edge.Decision, string) {
	// Only a caller on this machine (or in this pod's network namespace)
	// may have a token, whatever address the admin listener is bound to:
	// it binds 0.0.0.0 in Kubernetes so that the kubelet can probe it. A
	// caller on a unix socket is on this machine (its file mode decides
	// who connects).
	if !onUnixSocket(r) {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
			return edge.CallerNotAllowed, "only callers on this machine may have a token (connect over loopback or a unix socket)"
		}
	}
	for h := range r.Header {
		if addedByProxy(h) {
			return edge.CallerNotAllowed, "requests that came through a proxy (" + h + ") are refused"
		}
	}
	if _, ok := r.Header["Origin"]; ok {
		return edge.BrowserRequestRefused, "requests from a browser (Origin) are refused"
	}
	for h := range r.Header {
		if strings.HasPrefix(h, "Sec-Fetch-") {
			return edge.BrowserRequestRefused, "requests from a browser (" + h + ") are refused"
		}
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if net.ParseIP(host) == nil && !strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return edge.BrowserRequestRefused, "the Host must be an IP address or localhost (DNS-rebinding protection)"
	}
	return "", ""
}

// onUnixSocket reports whether r came in on a unix socket: the address
// the server accepted it on (http.LocalAddrContextKey) is a unix one.
func onUnixSocket(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && a != nil && (a.Network() == "unix" || a.Network() == "unixpacket")
}
