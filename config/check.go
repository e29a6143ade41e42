package config

import (
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/credproxy/credproxy/internal/authority"
	"github.com/credproxy/credproxy/internal/listen"
)

// url parses the base URL raw of variable name: absolute, https (http
// only when insecureOK), with a host and without user information, query
// or fragment. A path is kept as the base path, without its trailing
// slash, and the host is lower-cased.
//
// Messages never quote user information, a query or a fragment: that is
// where URLs carry credentials.
func (l *loader) url(name, raw string, insecureOK bool, insecureVar string) *url.URL {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	switch {
	case err != nil && strings.ContainsAny(raw, "@?#"):
		l.problem(name, "is not a valid URL")
		return nil
	case err != nil:
		l.problem(name, "%q is not a valid URL", raw)
		return nil
	case u.User != nil:
		l.problem(name, "must not contain user information (user:password@): credentials go in their own variables")
		return nil
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		l.problem(name, "a base URL has no query (?...) or fragment (#...)")
		return nil
	}
	// From here on the URL holds nothing that may not be quoted.
	shown := u.String()
	switch {
	case u.Scheme == "http" && !insecureOK:
		l.problem(name, "%q: plain http would expose the credential; use https (or %s=true in tests)", shown, insecureVar)
		return nil
	case u.Scheme != "https" && u.Scheme != "http":
		l.problem(name, "%q: want an https:// URL", shown)
		return nil
	case u.Opaque != "" || u.Host == "":
		l.problem(name, "%q has no host (want https://host/path)", shown)
		return nil
	case !validHost(u.Hostname()):
		l.problem(name, "%q: %q is not a valid host name", shown, u.Hostname())
		return nil
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, ok := parsePort(p); !ok || n == 0 {
			l.problem(name, "%q: bad port", shown)
			return nil
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u
}

// checkAddresses validates the listener addresses, warns about TCP ones
// off loopback, and refuses two listeners on one address. A unix socket is
// never off loopback: who may connect is the socket file's mode.
func (l *loader) checkAddresses(cfg *Config) {
	type listener struct {
		name, host string
		port       int
	}
	var seen []listener
	sockets := map[string]string{} // clean socket path -> the variable naming it
	check := func(name, addr, exposure string) {
		if addr == "" {
			return
		}
		if path, ok := strings.CutPrefix(addr, listen.UnixPrefix); ok {
			l.checkSocket(name, addr, path, sockets)
			return
		}
		host, port, ok := splitAddr(addr)
		if !ok {
			l.problem(name, "%q is not host:port or unix:/path.sock (e.g. 127.0.0.1:8080)", addr)
			return
		}
		// Port 0 picks a free port at every listen: never a collision.
		for _, o := range seen {
			if port != 0 && port == o.port && sameListenHost(host, o.host) {
				l.problem(name, "%s is already used by %s", addr, o.name)
				return
			}
		}
		seen = append(seen, listener{name: name, host: host, port: port})
		if exposure != "" && !isLoopback(host) {
			l.warn("%s=%s is not a loopback address: %s", name, addr, exposure)
		}
	}
	// Without the token API the admin listener serves health, metrics and
	// the CA certificate, which Kubernetes probes need off loopback.
	admin := ""
	if cfg.TokenAPI {
		admin = "the token APIs answer loopback callers only, but whoever reaches it sees the status page and metrics"
	}
	check(Prefix+"ADMIN_ADDR", cfg.AdminAddr, admin)
	check(Prefix+"FORWARD_ADDR", cfg.ForwardAddr, "whoever reaches it can use the credentials")
	for _, r := range cfg.Routes {
		check(r.Prefix+"LISTEN", r.Listen, "whoever reaches it can use the credential")
	}
}

// maxSocketPath is the longest unix socket path Linux takes: sun_path
// holds 108 bytes, the terminating NUL included.
const maxSocketPath = 107

// checkSocket validates the unix socket address addr (unix:path) of
// variable name, and refuses a path that another variable's socket has
// (sockets, by clean path).
func (l *loader) checkSocket(name, addr, path string, sockets map[string]string) {
	switch {
	case !strings.HasPrefix(path, "/"):
		l.problem(name, "%q: a unix socket address is unix: and an absolute path (e.g. unix:/run/credproxy/api.sock)", addr)
		return
	case strings.HasSuffix(path, "/"):
		l.problem(name, "%q names a directory; want a socket file in it, e.g. %sapi.sock", addr, addr)
		return
	case len(path) > maxSocketPath:
		l.problem(name, "%q: the path is longer than %d bytes, the most a unix socket path may hold", addr, maxSocketPath)
		return
	}
	clean := filepath.Clean(path)
	if other, dup := sockets[clean]; dup {
		l.problem(name, "%s%s is already used by %s", listen.UnixPrefix, clean, other)
		return
	}
	sockets[clean] = name
}

// splitAddr splits a listener address: host (empty, an IP address or a
// host name) and a numeric port.
func splitAddr(addr string) (host string, port int, ok bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, ok = parsePort(p)
	if !ok || (host != "" && !validHost(host)) {
		return "", 0, false
	}
	return host, port, true
}

// parsePort parses a decimal port, 0 to 65535. Unlike strconv.Atoi it
// refuses signs and white space.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= 65535
}

// sameListenHost reports whether listeners on hosts a and b and one port
// collide: the same host, or either is the wildcard (Go's listener on
// 0.0.0.0, :: or "" takes the port on every address).
func sameListenHost(a, b string) bool {
	wildcard := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	if wildcard(a) || wildcard(b) {
		return true
	}
	if strings.EqualFold(a, "localhost") || strings.EqualFold(b, "localhost") {
		return isLoopback(a) && isLoopback(b)
	}
	if ia, ib := net.ParseIP(a), net.ParseIP(b); ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(a, b)
}

// isLoopback reports whether host is localhost or a loopback address
// (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkHost validates a HOSTS entry, a host name or IP address with an
// optional port, and returns it lower-cased.
func checkHost(h string) (string, error) {
	switch {
	case strings.Contains(h, "://") || strings.ContainsAny(h, "/@?#"):
		return "", errors.New("want a host name or host:port, not a URL")
	case strings.Contains(h, "*"):
		return "", errors.New("wildcards are not supported: list each host name")
	}
	host, port := h, ""
	switch {
	case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
		host = h[1 : len(h)-1] // [::1] without a port
	case strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1:
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			return "", errors.New("want a host name or host:port")
		}
		if n, ok := parsePort(port); !ok || n == 0 {
			return "", errors.New("bad port")
		}
	}
	// More than one colon without brackets: an IPv6 address, no port.
	if !validHost(host) {
		return "", errors.New("bad host name")
	}
	host = strings.ToLower(host)
	if port == "" {
		return host, nil
	}
	return net.JoinHostPort(host, port), nil
}

// validHost reports whether s is an IP address or a DNS host name
// (letters, digits, '-' and '_', in dot-separated labels of at most 63).
func validHost(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// reservedHeaders are headers HTTP itself manages (hop-by-hop headers,
// framing, routing): a credential put there would be dropped, rewritten or
// break the request.
var reservedHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true,
}

// validHeaderName reports whether s is an HTTP token (RFC 9110, 5.6.2).
func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// printableASCII reports whether s holds only printable ASCII and spaces.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s may be part of a header value: no
// control characters but tab, so that no value can split the header.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// allowedHosts validates CREDPROXY_ALLOWED_HOSTS: plain host names,
// returned lower case without a trailing dot, duplicates dropped.
func (l *loader) allowedHosts(list string) []string {
	const v = Prefix + "ALLOWED_HOSTS"
	var out []string
	for _, h := range splitList(list) {
		switch {
		case strings.Contains(h, "://") || strings.ContainsAny(h, "/@?#"):
			l.problem(v, "%q: want a plain host name (e.g. credproxy.internal), not a URL", h)
		case strings.Contains(h, "*"):
			l.problem(v, "%q: wildcards are not supported: list each host name", h)
		case strings.Count(h, ":") == 1 || strings.HasPrefix(h, "["):
			l.problem(v, "%q: want a plain host name without a port (any port is accepted)", h)
		case !validHost(h):
			l.problem(v, "%q: not a valid host name", h)
		default:
			if h = strings.TrimSuffix(strings.ToLower(h), "."); !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// allowedOrigins validates CREDPROXY_ALLOWED_ORIGINS: origins as browsers
// send them in Origin, scheme://host[:port] with nothing after, returned
// in the form browsers serialise them (lower case, no default port),
// duplicates dropped.
func (l *loader) allowedOrigins(list string) []string {
	const v = Prefix + "ALLOWED_ORIGINS"
	var out []string
	for _, o := range splitList(list) {
		origin, msg := checkOrigin(o)
		switch {
		case msg == errOriginUser:
			l.problem(v, "%s", msg)
		case msg != "":
			l.problem(v, "%q: %s", o, msg)
		case !slices.Contains(out, origin):
			out = append(out, origin)
		}
	}
	return out
}

// errOriginUser is checkOrigin's message for an origin with user
// information, for which the value must not be quoted (it may hold a
// password).
const errOriginUser = "an origin has no user information, query or fragment"

// checkOrigin returns o serialised as a browser sends it, or what is
// wrong with it.
func checkOrigin(o string) (origin, msg string) {
	const want = "want an origin, scheme://host[:port] (e.g. https://grafana.example.com)"
	scheme, rest, ok := strings.Cut(o, "://")
	switch {
	case strings.EqualFold(o, "null"):
		return "", want + "; null (sandboxed pages, file:) cannot be allowed"
	case !ok || rest == "":
		return "", want
	case strings.Contains(rest, "@"):
		return "", errOriginUser
	case strings.ContainsAny(rest, "?#"):
		return "", errOriginUser
	case strings.Contains(rest, "/"):
		return "", "an origin has no path, not even /"
	case strings.Contains(rest, "*"):
		return "", "wildcards are not supported: list each origin"
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", "the scheme must be http or https"
	}
	hp, err := checkHost(rest)
	if err != nil {
		return "", err.Error()
	}
	if defaultPort := map[string]string{"http": ":80", "https": ":443"}[scheme]; strings.HasSuffix(hp, defaultPort) {
		hp = strings.TrimSuffix(hp, defaultPort)
	}
	if strings.Contains(hp, ":") && !strings.HasPrefix(hp, "[") && strings.Count(hp, ":") > 1 {
		hp = "[" + hp + "]" // an IPv6 address without a port
	}
	return scheme + "://" + hp, ""
}

// checkSharedHosts refuses, with the forward proxy on, a host that two
// routes claim (by UPSTREAM or HOSTS): the forward proxy looks a request's
// host up to pick the credential, and with two candidates one route's
// callers would send the other's identity. Hosts compare as the forward
// proxy looks them up (authority.Normalize: case, default port, trailing
// dot). The later route in CREDPROXY_ROUTES is at fault, once per host.
// Without the forward proxy each route has its own listener, and two
// identities for one API are a legitimate use.
func (l *loader) checkSharedHosts(cfg *Config) {
	if cfg.ForwardAddr == "" {
		return
	}
	type claim struct{ route, variable string }
	owner := map[string]claim{} // normalised host -> its first claim
	for _, r := range cfg.Routes {
		hosts := map[string]string{} // normalised host -> variable, the first of the route
		var order []string
		add := func(host, variable string) {
			if _, dup := hosts[host]; !dup {
				hosts[host] = variable
				order = append(order, host)
			}
		}
		if r.Upstream != nil {
			add(authority.Normalize(r.Upstream.Scheme, r.Upstream.Host), r.Prefix+"UPSTREAM")
		}
		for _, h := range r.Hosts {
			add(authority.Normalize("https", h), r.Prefix+"HOSTS")
		}
		for _, host := range order {
			if o, taken := owner[host]; taken {
				l.problem(hosts[host], "%s is also claimed by route %s (%s); the forward proxy must know which credential a host gets",
					host, o.route, o.variable)
				continue
			}
			owner[host] = claim{route: r.Name, variable: hosts[host]}
		}
	}
}
