package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/authority"
)

// Tokens supplies a route's tokens; *tokencache.Cache implements it. Both
// methods are called concurrently by every request of the route.
type Tokens interface {
	// Token returns a valid token, or an error after which the request
	// must not be forwarded (503). When the error is an
	// exchange.Unavailable, its ClientDetail is what the client reads
	// and its LogCause goes to the log only; any other error's text is
	// the client's detail.
	Token(ctx context.Context) (exchange.Token, error)
	// Invalidate reports that the upstream rejected a token and returns
	// its replacement.
	Invalidate(ctx context.Context, rejected exchange.Token) (exchange.Token, error)
}

// RouteOptions describe a route: one credential and where it may be sent.
type RouteOptions struct {
	// Name names the route in logs, metrics and error bodies.
	Name string
	// Upstream is the base URL of the reverse proxy.
	Upstream *url.URL
	// Hosts are further host names the credential may go to (forward
	// mode), as host or host:port.
	Hosts []string
	// Header is the header to inject, in canonical form. It is used as
	// given: its spelling is what goes on the wire.
	Header string
	// Prefix is put before the token, separated by a space; empty for the
	// bare token.
	Prefix string
	// AllowInsecure allows the credential over plain http (tests only).
	AllowInsecure bool
	// Tokens supplies the tokens.
	Tokens Tokens
}

// Route is one credential and where it may be sent, as NewRoute built it:
// it does not change afterwards but for the header value it caches, and
// both modes' proxies of the route share it.
type Route struct {
	name          string
	upstream      *url.URL
	header        string
	prefix        string
	allowInsecure bool
	tokens        Tokens
	// succeeder is tokens when it wants to hear of accepted requests
	// (*tokencache.Cache ends its 401 back-off), found once here rather
	// than by a type assertion per request; nil otherwise.
	succeeder succeeder

	// authorities is the set of host:port authorities (default port
	// explicit) the credential may be sent to: the upstream's and the
	// hosts'.
	authorities map[string]bool
	// lastValue is the header value built for the token most recently
	// injected: every request of a token's lifetime reuses it instead of
	// building (allocating) its own.
	lastValue atomic.Pointer[headerCache]
	// noBodyScan turns off the scan of answers' bodies for the
	// credential: benchmarks only, to measure its cost. Headers are
	// cleaned whatever it says.
	noBodyScan bool
}

// NewRoute returns the route of o, with the set of authorities its
// credential may go to computed once. It refuses a route without a name,
// a header or a token supply, or with nowhere to send the credential.
func NewRoute(o RouteOptions) (*Route, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("proxy: route without a name")
	case o.Header == "":
		return nil, fmt.Errorf("proxy: route %s: no header to inject", o.Name)
	case o.Tokens == nil:
		return nil, fmt.Errorf("proxy: route %s: no token supply", o.Name)
	case o.Upstream == nil && len(o.Hosts) == 0:
		return nil, fmt.Errorf("proxy: route %s: neither an upstream nor hosts", o.Name)
	case o.Upstream != nil && o.Upstream.Host == "":
		return nil, fmt.Errorf("proxy: route %s: upstream %s has no host", o.Name, o.Upstream.Redacted())
	}
	r := &Route{
		name: o.Name, upstream: o.Upstream, header: o.Header, prefix: o.Prefix,
		allowInsecure: o.AllowInsecure, tokens: o.Tokens,
		authorities: map[string]bool{},
	}
	r.succeeder, _ = o.Tokens.(succeeder)
	if o.Upstream != nil {
		r.authorities[Authority(o.Upstream.Scheme, o.Upstream.Host)] = true
	}
	for _, h := range o.Hosts {
		r.authorities[Authority("https", h)] = true
	}
	return r, nil
}

// Name returns the route's name.
func (r *Route) Name() string { return r.name }

// headerCache is a token and the header values made from it. values is
// shared by every request of the token's lifetime: nothing downstream
// (httputil.ReverseProxy, net/http's Transport) writes to a header's
// value slice, and a replay clones the header first.
type headerCache struct {
	token  string
	values []string
	// mark is what replaces the token in an answer's body.
	mark string
}

// allows reports whether the route's credential may be sent to u: one of
// the route's hosts, over https unless AllowInsecure.
func (r *Route) allows(u *url.URL) bool {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && r.allowInsecure:
	default:
		return false
	}
	// The keys of authorities are what Authority returns, and Authority leaves
	// them unchanged: a host already in that form (requests to the
	// upstream as configured with a port, every intercepted request) is
	// found without building its normalised form.
	if r.authorities[u.Host] {
		return true
	}
	return r.authorities[Authority(u.Scheme, u.Host)]
}

// dropClientCredential removes from h the route's header and every header
// whose name differs from it only by case or by '_' for '-'
// (X_SF_Token beside X-SF-Token): some servers treat them alike, and the
// client's value must not reach the upstream beside the injected one.
func (r *Route) dropClientCredential(h http.Header) {
	delete(h, r.header)
	for k := range h {
		if sameHeaderName(k, r.header) {
			delete(h, k)
		}
	}
}

// sameHeaderName compares header names ignoring case and '_' against '-'.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if foldHeaderByte(a[i]) != foldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// headerValues is what goes into the route's header for tok, built once
// per token.
func (r *Route) headerValues(tok exchange.Token) []string {
	t := tok.Value.Reveal()
	if c := r.lastValue.Load(); c != nil && c.token == t {
		return c.values
	}
	v := t
	if r.prefix != "" {
		v = r.prefix + " " + t
	}
	c := &headerCache{token: t, values: []string{v}, mark: credentialMark(tok)}
	r.lastValue.Store(c)
	return c.values
}

// mark is what replaces tok in an answer's body: its fingerprint, built
// once per token like the header value.
func (r *Route) mark(tok exchange.Token) string {
	if c := r.lastValue.Load(); c != nil && c.token == tok.Value.Reveal() {
		return c.mark
	}
	return credentialMark(tok)
}

// credentialMark is "[credential sha256:xxxx]", the token's fingerprint.
func credentialMark(tok exchange.Token) string {
	return "[credential " + tok.Value.Fingerprint() + "]"
}

// Authority normalises a host or host:port to lower-case host:port, with
// the scheme's default port made explicit, so that "API.example.com",
// "api.example.com:443" and "api.example.com." compare equal for https.
// It is authority.Normalize, which config uses too to refuse two routes
// that claim one host in forward mode.
func Authority(scheme, hostport string) string {
	return authority.Normalize(scheme, hostport)
}
