package edge

import (
	"net"
	"net/http"

	"go.uber.org/zap"
)

// BrowserOptions configures the browser guard of one listener.
type BrowserOptions struct {
	// Listener names the listener in log lines ("route default",
	// "forward", "admin").
	Listener string
	// Route is the route label of refusals of requests addressed to the
	// listener itself: the route's name for a reverse listener, "" for
	// the admin and forward listeners.
	Route string
	// Loopback is true when the listener is bound to a loopback address
	// (see IsLoopback): its requests' Host must then be an IP literal,
	// localhost or one of AllowedHosts, so that a DNS-rebound name cannot
	// reach it.
	Loopback bool
	// ProxyListener is true for the forward-proxy listener: a CONNECT or
	// an absolute-form request is addressed to its target, not to the
	// listener, so Wrap passes it on; the forward proxy guards those it
	// carries to a route host with Proxied.
	ProxyListener bool
	// AllowedHosts are further Host names accepted (CREDPROXY_ALLOWED_HOSTS,
	// plain names). When set, they restrict a listener bound elsewhere
	// than loopback too.
	AllowedHosts []string
	// AllowedOrigins are origins (scheme://host[:port], as config
	// normalises them) whose requests pass whatever Sec-Fetch-Site says
	// (CREDPROXY_ALLOWED_ORIGINS).
	AllowedOrigins []string
	// Log receives one info line per refusal; nil logs nothing.
	Log *zap.Logger
	// Metrics counts refusals; nil counts nothing.
	Metrics *Metrics
}

// Browser is the browser guard of one listener. It is safe for
// concurrent use; it holds no state beyond its options.
type Browser struct {
	opts BrowserOptions
}

// NewBrowser returns the browser guard opts describe.
func NewBrowser(opts BrowserOptions) *Browser {
	return &Browser{opts: opts}
}

// Wrap returns next behind the guard, for requests addressed to the
// listener itself.
func (b *Browser) Wrap(next http.Handler) http.Handler {
	return next
}

// Proxied returns next behind the guard, for requests the forward proxy
// carries to route's host.
func (b *Browser) Proxied(route string, next http.Handler) http.Handler {
	return next
}

// IsLoopback reports whether a listener bound to addr is on loopback.
func IsLoopback(addr net.Addr) bool {
	return false
}
