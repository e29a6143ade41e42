package edge

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/internal/jsonerror"
)

// BrowserOptions configures the browser guard of one listener.
type BrowserOptions struct {
	// Listener names the listener in log lines ("route default",
	// "forward", "admin").
	Listener string
	// Route is the route label of refusals of requests addressed to the
	// listener itself: the route's name for a reverse listener, "" for
	// the admin and forward listeners (a route may be named "admin").
	Route string
	// Loopback is true when the listener is bound to a loopback address
	// (see IsLoopback): its requests' Host must then be an IP literal,
	// localhost or one of AllowedHosts, so that a DNS-rebound name cannot
	// reach it.
	Loopback bool
	// ProxyListener is true for the forward-proxy listener: a CONNECT or
	// an absolute-form request is addressed to its target, not to the
	// listener, so Wrap passes it on; the forward proxy guards those it
	// carries to a route host with Proxied, and the others carry no
	// credential.
	ProxyListener bool
	// AllowedHosts are further Host names accepted (CREDPROXY_ALLOWED_HOSTS,
	// plain names, any case). When set, they restrict a listener bound
	// elsewhere than loopback too.
	AllowedHosts []string
	// AllowedOrigins are origins (scheme://host[:port], as config
	// normalises them: lower case, no default port) whose requests pass
	// whatever Sec-Fetch-Site says (CREDPROXY_ALLOWED_ORIGINS).
	AllowedOrigins []string
	// Log receives one info line per refusal; nil logs nothing.
	Log *zap.Logger
	// Metrics counts refusals; nil counts nothing.
	Metrics *Metrics
	// OnRefused, when set, is told of each refusal of a request to a
	// route (route not ""), after it was answered, with the route and
	// the status: for the audit log.
	OnRefused func(r *http.Request, route string, status int)
}

// Browser is the browser guard of one listener: web pages must never
// spend the credential. It refuses with 403 browser_request_refused a
// request
//   - whose Origin is present and neither the origin it was addressed to
//     nor an allowed one ("null" included): a cross-origin fetch or form
//     (CSRF);
//   - whose Sec-Fetch-Site is cross-site or same-site, unless its Origin
//     is an allowed one: a cross-site <img>, <script> or no-cors fetch,
//     which send no Origin on GET;
//   - addressed to a loopback listener (or to any listener once
//     AllowedHosts is set) under a Host name that is not localhost or an
//     allowed name: after DNS rebinding, a page's own origin is the
//     listener, and only the name it used gives it away.
//
// Callers that are not browsers send none of these headers and pass at
// the cost of three header lookups. It is safe for concurrent use; it
// holds no state beyond its options.
type Browser struct {
	listener, route string
	// strictHost is whether Host is checked: on loopback, or once
	// AllowedHosts is set.
	strictHost    bool
	proxyListener bool
	hosts         []string
	origins       map[string]bool
	log           *zap.Logger
	metrics       *Metrics
	onRefused     func(*http.Request, string, int)
}

// NewBrowser returns the browser guard opts describe.
func NewBrowser(opts BrowserOptions) *Browser {
	b := &Browser{
		listener: opts.Listener, route: opts.Route,
		strictHost:    opts.Loopback || len(opts.AllowedHosts) > 0,
		proxyListener: opts.ProxyListener,
		origins:       map[string]bool{},
		log:           opts.Log, metrics: opts.Metrics,
		onRefused: opts.OnRefused,
	}
	for _, h := range opts.AllowedHosts {
		b.hosts = append(b.hosts, strings.TrimSuffix(h, "."))
	}
	for _, o := range opts.AllowedOrigins {
		b.origins[normalOrigin(o)] = true
	}
	if b.log == nil {
		b.log = zap.NewNop()
	}
	return b
}

// Wrap returns next behind the guard, for requests addressed to the
// listener itself: its own origin is http(s)://<Host>, and Host is
// checked against DNS rebinding.
func (b *Browser) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.proxyListener && (r.Method == http.MethodConnect || r.URL.IsAbs()) {
			next.ServeHTTP(w, r)
			return
		}
		why := ""
		if (b.strictHost || arrivedOnLoopback(r)) && !b.hostAllowed(r.Host) {
			why = whyHost
		} else {
			why = b.browserWhy(r, requestScheme(r))
		}
		if why != "" {
			b.refuse(w, r, b.route, why)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Proxied returns next behind the guard, for requests a forward proxy
// carries to route's host (inside an intercepted tunnel, or an
// absolute-form plain request): their own origin is the target's, the
// origin the browser addressed, and any Host passes (it is the target's
// name, which the forward proxy matched to the route).
func (b *Browser) Proxied(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := requestScheme(r)
		if r.TLS == nil && r.URL.IsAbs() {
			scheme = r.URL.Scheme
		}
		if why := b.browserWhy(r, scheme); why != "" {
			b.refuse(w, r, route, why)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Why a request is refused: the header that gave it away, in the log
// line, and the error's detail.
const (
	whyOrigin = "origin"
	whySite   = "sec-fetch-site"
	whyHost   = "host"
)

// detail is the error detail of a why. It quotes nothing from the
// request.
func detail(why string) string {
	switch why {
	case whyOrigin:
		return "the request comes from a web page of another origin (Origin): a browser's pages may not spend the credential (CREDPROXY_ALLOWED_ORIGINS lists origins that may)"
	case whySite:
		return "the request comes from a web page of another site (Sec-Fetch-Site): a browser's pages may not spend the credential"
	default:
		return "the Host is a name this listener does not answer to (DNS-rebinding protection): use an IP address or localhost, or list the name in CREDPROXY_ALLOWED_HOSTS"
	}
}

// browserWhy returns why r comes from a page that may not spend the
// credential, or "" when it does not; scheme is the scheme of the origin
// the request was addressed to, with r.Host.
func (b *Browser) browserWhy(r *http.Request, scheme string) string {
	if origins, ok := r.Header["Origin"]; ok {
		allowed := true
		for _, o := range origins {
			switch {
			case sameOrigin(o, scheme, r.Host):
				allowed = false // own origin: Sec-Fetch-Site decides
			case b.allowedOrigin(o):
			default:
				return whyOrigin
			}
		}
		if allowed {
			return "" // an allowed origin passes whatever Sec-Fetch-Site says
		}
	}
	for _, s := range r.Header["Sec-Fetch-Site"] {
		if strings.EqualFold(s, "cross-site") || strings.EqualFold(s, "same-site") {
			return whySite
		}
	}
	return ""
}

// allowedOrigin reports whether o is one of the allowed origins. Browsers
// send origins serialised (lower case, no default port), which the map
// finds without allocating; anything else is normalised first.
func (b *Browser) allowedOrigin(o string) bool {
	if len(b.origins) == 0 {
		return false
	}
	return b.origins[o] || b.origins[normalOrigin(o)]
}

// hostAllowed reports whether a request's Host may reach a listener that
// checks it: an IP literal, localhost (trailing dot, any port), one of the
// allowed names, or none at all (an HTTP/1.0 client; browsers always
// send one).
func (b *Browser) hostAllowed(host string) bool {
	name := hostName(host)
	if name == "" {
		return true
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	name = strings.TrimSuffix(name, ".")
	if strings.EqualFold(name, "localhost") {
		return true
	}
	for _, h := range b.hosts {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// refuse answers 403 browser_request_refused, logs and counts it. The
// log line holds what identifies the page (origin, Sec-Fetch-Site, Host),
// never a credential or the request's path.
func (b *Browser) refuse(w http.ResponseWriter, r *http.Request, route, why string) {
	b.log.Info("request refused: "+ReasonBrowser,
		zap.String("listener", b.listener), zap.String("route", route),
		zap.String("origin", strings.Join(r.Header["Origin"], ", ")), zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")),
		zap.String("host", r.Host), zap.String("method", r.Method), zap.String("remote", r.RemoteAddr),
		zap.String("refused_for", why))
	b.metrics.Denied(route, ReasonBrowser)
	jsonerror.Write(w, http.StatusForbidden, jsonerror.Body{Error: ReasonBrowser, Route: route, Detail: detail(why)})
	if b.onRefused != nil && route != "" {
		b.onRefused(r, route, http.StatusForbidden)
	}
}

// requestScheme is the scheme a request reached its listener with.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// sameOrigin reports whether the serialised origin o is scheme://host,
// ignoring case and a default port on either side, without allocating.
func sameOrigin(o, scheme, host string) bool {
	if len(o) < len(scheme)+3 || !strings.EqualFold(o[:len(scheme)], scheme) || o[len(scheme):len(scheme)+3] != "://" {
		return false
	}
	a, h := trimDefaultPort(o[len(scheme)+3:], scheme), trimDefaultPort(host, scheme)
	return h != "" && strings.EqualFold(a, h)
}

// trimDefaultPort drops scheme's default port from hostport.
func trimDefaultPort(hostport, scheme string) string {
	port := ":80"
	if scheme == "https" {
		port = ":443"
	}
	return strings.TrimSuffix(hostport, port)
}

// normalOrigin is an origin in the form browsers send: lower case,
// without its scheme's default port.
func normalOrigin(o string) string {
	o = strings.ToLower(o)
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok {
		return o
	}
	return scheme + "://" + trimDefaultPort(rest, scheme)
}

// hostName is the name or address in a Host value, without port or IPv6
// brackets.
func hostName(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			return host[1:end]
		}
		return host
	}
	if strings.Count(host, ":") == 1 {
		return host[:strings.IndexByte(host, ':')]
	}
	return host // a name, or an IPv6 address without brackets
}

// arrivedOnLoopback reports whether r came in on a loopback connection.
// A listener bound to every address (0.0.0.0, a gateway) is reached by a
// local browser at 127.0.0.1 too, where a DNS-rebound name must be
// refused as on a loopback listener; callers from other machines keep
// sending any Host.
func arrivedOnLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// IsLoopback reports whether a listener bound to addr is on loopback
// (127.0.0.0/8, ::1). An unspecified address (0.0.0.0, ::) is not: it
// is reachable from elsewhere.
func IsLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
