package tokenapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokencache"
)

// OAuth2TokenPath is where the local OAuth 2.0 token endpoint answers.
const OAuth2TokenPath = "/oauth2/token"

const (
	// maxOAuth2Body bounds a token request's form body: a client
	// credentials request is a few hundred bytes.
	maxOAuth2Body = 16 << 10
	// oauth2ReadTimeout bounds reading that body; the admin listener
	// itself has no read timeout beyond the headers'.
	oauth2ReadTimeout = 10 * time.Second
)

// servedUntiler is a Tokens that stops serving a token before it expires
// (*tokencache.Cache, by the route's expiry margin): the endpoint counts
// expires_in to then, so that its clients renew when credproxy does.
type servedUntiler interface {
	ServedUntil(tok exchange.Token) (time.Time, bool)
}

var _ servedUntiler = (*tokencache.Cache)(nil)

// NewOAuth2Handler returns the local OAuth 2.0 token endpoint, to be
// mounted at OAuth2TokenPath (CREDPROXY_TOKEN_API=true): an RFC 6749
// token endpoint for local clients that speak OAuth 2.0 client
// credentials (Prometheus, Grafana, the OpenTelemetry Collector) but not
// the route's own identity service.
//
// The client_id is the route's name; the client authenticates with HTTP
// Basic (RFC 6749 2.3.1) or with client_id and client_secret in the form
// body, against the route's ClientSecret, compared in constant time. The
// answer is the route's current token (no exchange of its own), as RFC
// 6749 5.1 JSON whose expires_in counts to when credproxy stops serving
// it; errors are RFC 6749 5.2 JSON. The token API's caller guards apply
// (refuseCaller), but not its Metadata header, which OAuth 2.0 clients
// cannot send. Every answer carries Cache-Control: no-store and Pragma:
// no-cache. Requests are counted by route and result; logs show a token's
// fingerprint, never a token or a secret.
func NewOAuth2Handler(opts Options) http.Handler {
	return &oauth2Endpoint{routes: byName(opts.Routes), metrics: opts.Metrics, log: logger(opts, "oauth2"), opts: opts}
}

type oauth2Endpoint struct {
	routes  map[string]*Route
	metrics *Metrics
	log     *zap.Logger
	opts    Options
}

// oauth2Answer is an RFC 6749 5.1 access token response.
type oauth2Answer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	// ExpiresIn is omitted for a token without expiry (static).
	ExpiresIn int64 `json:"expires_in,omitempty"`
	// token is AccessToken, for the audit log's fingerprint.
	token secret.Secret
}

// oauth2Error is an RFC 6749 5.2 error response and how it is sent.
type oauth2Error struct {
	status int
	// result is the metric's label: the error code, or "forbidden".
	result      string
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// decision is the audit log's: an edge decision where one fits (the
	// caller guards, credential_unavailable), else Code.
	decision edge.Decision
	// basic is set when the client authenticated, or tried to, with the
	// Authorization header: a 401 then carries WWW-Authenticate.
	basic bool
}

func invalidRequest(desc string) *oauth2Error {
	return &oauth2Error{status: http.StatusBadRequest, result: "invalid_request", Code: "invalid_request", Description: desc}
}

func invalidClient(desc string, basic bool) *oauth2Error {
	return &oauth2Error{status: http.StatusUnauthorized, result: "invalid_client", Code: "invalid_client", Description: desc, basic: basic}
}

func unavailable(desc string) *oauth2Error {
	return &oauth2Error{status: http.StatusServiceUnavailable, result: "temporarily_unavailable", Code: "temporarily_unavailable", Description: desc,
		decision: edge.CredentialUnavailable}
}

func (o *oauth2Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	start := time.Now()
	route, resp, e := o.answer(w, r)
	label := ""
	if route != nil {
		label = route.Name
	}
	if e != nil {
		d := e.decision
		if d == "" {
			d = edge.Decision(e.Code)
		}
		o.opts.record(auditEvent(r, edge.ViaOAuth2, start, label, e.status, d, secret.Secret{}))
		o.metrics.oauth2Request(label, e.result)
		o.log.Warn("OAuth 2.0 token request refused", zap.String("route", label), zap.String("remote", r.RemoteAddr),
			zap.Int("status", e.status), zap.String("error", e.Code), zap.String("reason", e.Description))
		writeOAuth2Error(w, e)
		return
	}
	o.opts.record(auditEvent(r, edge.ViaOAuth2, start, label, http.StatusOK, edge.Allowed, resp.token))
	o.metrics.oauth2Request(label, "ok")
	h.Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		o.log.Debug("OAuth 2.0 token request: client went away", zap.Error(err))
	}
}

func writeOAuth2Error(w http.ResponseWriter, e *oauth2Error) {
	switch {
	case e.status == http.StatusUnauthorized && e.basic:
		w.Header().Set("WWW-Authenticate", `Basic realm="credproxy"`)
	case e.status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(e)
}

// answer decides the response: the route asked for (nil when unknown),
// and a token or an error.
func (o *oauth2Endpoint) answer(w http.ResponseWriter, r *http.Request) (*Route, *oauth2Answer, *oauth2Error) {
	if d, reason := refuseCaller(r); reason != "" {
		return nil, nil, &oauth2Error{status: http.StatusForbidden, result: "forbidden", Code: "access_denied", Description: reason, decision: d}
	}
	if r.Method != http.MethodPost {
		return nil, nil, &oauth2Error{status: http.StatusMethodNotAllowed, result: "invalid_request", Code: "invalid_request", Description: "the token endpoint answers POST only"}
	}
	form, e := readTokenForm(w, r)
	if e != nil {
		return nil, nil, e
	}
	switch gt := form.Get("grant_type"); {
	case gt == "":
		return nil, nil, invalidRequest("grant_type is required")
	case gt != "client_credentials":
		return nil, nil, &oauth2Error{status: http.StatusBadRequest, result: "unsupported_grant_type", Code: "unsupported_grant_type", Description: "only grant_type=client_credentials is supported"}
	}
	route, e := o.authenticate(r, form)
	if e != nil {
		return route, nil, e
	}
	resp, e := o.token(r, route)
	return route, resp, e
}

// tokenParams are the parameters the endpoint reads, the only ones whose
// names an error may quote: another name could be anything.
var tokenParams = map[string]bool{"grant_type": true, "client_id": true, "client_secret": true, "scope": true}

// readTokenForm reads the form body of a token request (RFC 6749 3.2):
// application/x-www-form-urlencoded, at most maxOAuth2Body, no parameter
// twice, and nothing in the URL's query, where a secret would end up in
// logs. Parameters with an empty value are dropped, as RFC 6749 3.1 says
// they must be treated as omitted.
func readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauth2Error) {
	if r.URL.RawQuery != "" {
		return nil, invalidRequest("parameters go in the form body, not in the URL")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("the body must be application/x-www-form-urlencoded")
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(oauth2ReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOAuth2Body))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return nil, invalidRequest("the request body is larger than 16 KiB")
	}
	if err != nil {
		return nil, invalidRequest("the request body could not be read")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, invalidRequest("the body is not a valid form")
	}
	for k, vs := range form {
		switch {
		case len(vs) > 1 && tokenParams[k]:
			return nil, invalidRequest(k + " is given more than once")
		case len(vs) > 1:
			return nil, invalidRequest("a parameter is given more than once")
		case vs[0] == "":
			delete(form, k)
		}
	}
	return form, nil
}

// authenticate finds the client's route and checks its secret. A client
// authenticates one way: the Authorization header (HTTP Basic, whose id
// and secret RFC 6749 2.3.1 form-encodes) or client_id and client_secret
// in the body. The body may repeat the Basic client_id, not contradict it.
func (o *oauth2Endpoint) authenticate(r *http.Request, form url.Values) (*Route, *oauth2Error) {
	_, basic := r.Header["Authorization"]
	id, secrets := form.Get("client_id"), []string{form.Get("client_secret")}
	if basic {
		if form.Has("client_secret") {
			return nil, invalidRequest("client credentials in both the Authorization header and the body; use one")
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, invalidClient("the Authorization header must be HTTP Basic with the client_id and client_secret", true)
		}
		// The RFC form-encodes both; clients that send them raw (curl -u)
		// are common, and a secret with a + or a % in it would then decode
		// to something else: either form of the secret is accepted.
		bid := formDecode(user)
		if id != "" && id != bid {
			return nil, invalidRequest("client_id in the body differs from the one in the Authorization header")
		}
		id, secrets = bid, []string{formDecode(pass), pass}
	}
	if id == "" {
		return nil, invalidClient("client authentication is required; client_id is the route's name", basic)
	}
	route := o.routes[id]
	if route == nil {
		return nil, invalidClient("unknown client_id", basic)
	}
	if !route.ClientSecret.IsSet() {
		return route, nil
	}
	want, err := route.ClientSecret.Load()
	if err != nil {
		// Fail closed. err names the variable and the file, never content.
		o.log.Error("local client secret unreadable; refusing the route's OAuth 2.0 clients", zap.String("route", route.Name), zap.Error(err))
		return route, unavailable("the route's local client secret could not be read")
	}
	if !secretMatches(want, secrets...) {
		return route, invalidClient("client authentication failed", basic)
	}
	return route, nil
}

// formDecode undoes application/x-www-form-urlencoded encoding; a value
// that is not validly encoded is returned as it is.
func formDecode(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

// secretMatches reports whether any candidate equals want, in time that
// depends on neither value: the comparison is of SHA-256 digests, so not
// even want's length shows, and every candidate is compared.
func secretMatches(want secret.Secret, candidates ...string) bool {
	w := sha256.Sum256([]byte(want.Reveal()))
	match := 0
	for _, c := range candidates {
		g := sha256.Sum256([]byte(c))
		match |= subtle.ConstantTimeCompare(w[:], g[:])
	}
	return match == 1 && !want.Empty()
}

// token answers the route's current token.
func (o *oauth2Endpoint) token(r *http.Request, route *Route) (*oauth2Answer, *oauth2Error) {
	tok, err := route.Tokens.Token(r.Context())
	if err != nil {
		detail := "no valid token"
		if ue, ok := errors.AsType[*tokencache.UnavailableError](err); ok {
			detail = ue.Detail
		}
		return nil, unavailable(detail)
	}
	resp := &oauth2Answer{AccessToken: tok.Value.Reveal(), TokenType: route.TokenType, token: tok.Value}
	if resp.TokenType == "" {
		resp.TokenType = "Bearer"
	}
	if !tok.Expiry.IsZero() {
		until := tok.Expiry
		if su, ok := route.Tokens.(servedUntiler); ok {
			if u, ok := su.ServedUntil(tok); ok && !u.IsZero() {
				until = u
			}
		}
		// At least 1: OAuth 2.0 clients read expires_in 0 as "never
		// expires" (golang.org/x/oauth2 does), and Token has just said
		// the token is still being served.
		resp.ExpiresIn = max(1, int64(time.Until(until)/time.Second))
	}
	o.log.Info("token handed out", zap.String("route", route.Name), zap.String("remote", r.RemoteAddr), zap.String("endpoint", OAuth2TokenPath),
		zap.Stringer("token", tok.Value), zap.Int64("expires_in", resp.ExpiresIn))
	return resp, nil
}
