package config

import (
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/credproxy/credproxy/internal/secret"
)

// Prefix starts every credproxy variable.
const Prefix = "CREDPROXY_"

// allKinds is every contract value of AUTH, in documentation order.
var allKinds = []Kind{KindCSPAPIToken, KindCSPOAuthApp, KindSplunkSession, KindOAuth2ClientCredential, KindOAuth2RefreshToken, KindOAuth2TokenExchange, KindStatic}

// globalEnv holds the global variables as caarlos0/env parses them. The
// doc tags feed `credproxy --help` and the README's table.
type globalEnv struct {
	Routes            string        `env:"ROUTES" doc:"comma list of route names (unset: one route named default)"`
	AdminAddr         string        `env:"ADMIN_ADDR" envDefault:"127.0.0.1:9901" doc:"admin listener: /healthz, /readyz, /metrics, /ca.pem"`
	ForwardAddr       string        `env:"FORWARD_ADDR" doc:"forward-proxy listener, e.g. 127.0.0.1:3128 (unset: off)"`
	CACertFile        string        `env:"CA_CERT_FILE" doc:"forward-proxy CA certificate (unset: ephemeral CA)"`
	CAKeyFile         string        `env:"CA_KEY_FILE" doc:"forward-proxy CA private key"`
	ForwardDenyOthers bool          `env:"FORWARD_DENY_OTHERS" envDefault:"false" doc:"refuse forward-proxy traffic to hosts of no route"`
	TokenAPI          bool          `env:"TOKEN_API" envDefault:"false" doc:"serve GET /v1/token/<route> on the admin listener"`
	LogLevel          string        `env:"LOG_LEVEL" envDefault:"info" doc:"debug, info, warn or error"`
	LogFormat         string        `env:"LOG_FORMAT" envDefault:"json" doc:"json or console"`
	ShutdownTimeout   time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s" doc:"drain time on SIGTERM"`
}

// routeEnv holds one route's variables, without their prefix.
type routeEnv struct {
	Auth                  string        `env:"AUTH" doc:"credential kind: csp-api-token, csp-oauth-app, splunk-session, oauth2-client-credentials, oauth2-refresh-token, oauth2-token-exchange, static"`
	Upstream              string        `env:"UPSTREAM" doc:"https:// base URL requests are forwarded to"`
	Listen                string        `env:"LISTEN" doc:"reverse-proxy address (default route: 127.0.0.1:8080)"`
	Hosts                 string        `env:"HOSTS" doc:"extra host names that get this credential in forward mode"`
	Header                string        `env:"HEADER" doc:"injected header (default Authorization)"`
	HeaderPrefix          string        `env:"HEADER_PREFIX" doc:"put before the token with a space (default Bearer; empty: bare token)"`
	CSPURL                string        `env:"CSP_URL" envDefault:"https://console.cloud.vmware.com" doc:"VMware Cloud Services base URL"`
	CSPAPIToken           string        `env:"CSP_API_TOKEN" doc:"CSP user API token (csp-api-token)"`
	CSPAPITokenFile       string        `env:"CSP_API_TOKEN_FILE" doc:"file holding it, read at every exchange"`
	CSPClientID           string        `env:"CSP_CLIENT_ID" doc:"CSP server-to-server app ID (csp-oauth-app)"`
	CSPClientSecret       string        `env:"CSP_CLIENT_SECRET" doc:"CSP app secret"`
	CSPClientSecretFile   string        `env:"CSP_CLIENT_SECRET_FILE" doc:"file holding it, read at every exchange"`
	CSPOrgID              string        `env:"CSP_ORG_ID" doc:"CSP organization the token is scoped to (optional)"`
	SplunkRealm           string        `env:"SPLUNK_REALM" doc:"Splunk Observability realm, e.g. us1 (splunk-session)"`
	SplunkEmail           string        `env:"SPLUNK_EMAIL" doc:"Splunk login email"`
	SplunkPassword        string        `env:"SPLUNK_PASSWORD" doc:"Splunk login password"`
	SplunkPasswordFile    string        `env:"SPLUNK_PASSWORD_FILE" doc:"file holding it"`
	SplunkOrgID           string        `env:"SPLUNK_ORG_ID" doc:"Splunk organization ID (optional)"`
	TokenURL              string        `env:"TOKEN_URL" doc:"OAuth 2.0 token endpoint (oauth2-* kinds)"`
	ClientID              string        `env:"CLIENT_ID" doc:"OAuth 2.0 client ID"`
	ClientSecret          string        `env:"CLIENT_SECRET" doc:"OAuth 2.0 client secret"`
	ClientSecretFile      string        `env:"CLIENT_SECRET_FILE" doc:"file holding it"`
	Scopes                string        `env:"SCOPES" doc:"OAuth 2.0 scopes, comma or space separated"`
	Audience              string        `env:"AUDIENCE" doc:"OAuth 2.0 audience"`
	AuthStyle             string        `env:"AUTH_STYLE" envDefault:"basic" doc:"OAuth 2.0 client authentication: basic or body"`
	RefreshToken          string        `env:"REFRESH_TOKEN" doc:"OAuth 2.0 refresh token (oauth2-refresh-token)"`
	RefreshTokenFile      string        `env:"REFRESH_TOKEN_FILE" doc:"file holding it"`
	SubjectTokenFile      string        `env:"SUBJECT_TOKEN_FILE" doc:"subject token file for oauth2-token-exchange"`
	SubjectTokenType      string        `env:"SUBJECT_TOKEN_TYPE" envDefault:"urn:ietf:params:oauth:token-type:jwt" doc:"RFC 8693 subject token type"`
	Token                 string        `env:"TOKEN" doc:"static token (static)"`
	TokenFile             string        `env:"TOKEN_FILE" doc:"file holding it, re-read periodically"`
	RefreshAt             float64       `env:"REFRESH_AT" envDefault:"0.66" doc:"fraction of a token's lifetime after which it is renewed"`
	ExpiryMargin          time.Duration `env:"EXPIRY_MARGIN" doc:"stop serving a token this long before expiry (default: min of 10s and 10% of the lifetime)"`
	DefaultTTL            time.Duration `env:"DEFAULT_TTL" envDefault:"300s" doc:"lifetime assumed when a token response has none"`
	TokenWait             time.Duration `env:"TOKEN_WAIT" envDefault:"5s" doc:"how long a request waits for a token before 503"`
	ExchangeTimeout       time.Duration `env:"EXCHANGE_TIMEOUT" envDefault:"10s" doc:"bound on one exchange with the identity service"`
	AllowInsecureUpstream bool          `env:"ALLOW_INSECURE_UPSTREAM" envDefault:"false" doc:"allow http:// upstream and identity URLs (tests only)"`
}

// VarDoc documents one variable for `credproxy --help`.
type VarDoc struct {
	// Name is the full name of a global variable, or the suffix of a
	// route variable (AUTH) when PerRoute.
	Name    string
	Default string
	Doc     string
	// PerRoute is true for the variables of a route.
	PerRoute bool
}

// Variables lists every variable credproxy reads.
func Variables() []VarDoc {
	var out []VarDoc
	for _, f := range reflect.VisibleFields(reflect.TypeFor[globalEnv]()) {
		out = append(out, VarDoc{Name: Prefix + f.Tag.Get("env"), Default: f.Tag.Get("envDefault"), Doc: f.Tag.Get("doc")})
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[routeEnv]()) {
		out = append(out, VarDoc{Name: f.Tag.Get("env"), Default: f.Tag.Get("envDefault"), Doc: f.Tag.Get("doc"), PerRoute: true})
	}
	return out
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Var is the variable at fault.
	Var string
	// Msg says what is wrong with it.
	Msg string
}

// Error is every problem found in the configuration.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Var + ": " + p.Msg
	}
	return strings.Join(lines, "\n")
}

// loader collects problems and warnings while loading.
type loader struct {
	env      map[string]string
	problems []Problem
	warnings []string
}

func (l *loader) problem(v, format string, args ...any) {
	l.problems = append(l.problems, Problem{Var: v, Msg: fmt.Sprintf(format, args...)})
}

var (
	routeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	realmRE     = regexp.MustCompile(`^[a-z0-9]+$`)
)

// Load reads and validates the configuration from environ. On any problem
// it returns an *Error listing all of them.
func Load(environ map[string]string) (*Config, error) {
	l := &loader{env: environ}
	var g globalEnv
	l.parse(&g, Prefix)
	cfg := &Config{
		AdminAddr:         g.AdminAddr,
		ForwardAddr:       g.ForwardAddr,
		CACertFile:        g.CACertFile,
		CAKeyFile:         g.CAKeyFile,
		ForwardDenyOthers: g.ForwardDenyOthers,
		TokenAPI:          g.TokenAPI,
		LogLevel:          strings.ToLower(g.LogLevel),
		LogFormat:         strings.ToLower(g.LogFormat),
		ShutdownTimeout:   g.ShutdownTimeout,
	}
	l.checkGlobals(cfg)

	known := map[string]bool{}
	for _, v := range Variables() {
		if !v.PerRoute {
			known[v.Name] = true
		}
	}
	names := splitList(g.Routes)
	if len(names) == 0 {
		cfg.Routes = append(cfg.Routes, l.route(DefaultRouteName, Prefix))
		markRouteVars(known, Prefix)
	} else {
		seen := map[string]string{}
		for _, name := range names {
			if !routeNameRE.MatchString(name) {
				l.problem(Prefix+"ROUTES", "route name %q: use letters, digits, '_' and '-'", name)
				continue
			}
			prefix := Prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
			if other, dup := seen[prefix]; dup {
				l.problem(Prefix+"ROUTES", "routes %q and %q both use the variables %s*", other, name, prefix)
				continue
			}
			seen[prefix] = name
			cfg.Routes = append(cfg.Routes, l.route(strings.ToLower(name), prefix))
			markRouteVars(known, prefix)
		}
		for _, v := range Variables() {
			if v.PerRoute && environ[Prefix+v.Name] != "" && !known[Prefix+v.Name] {
				l.problem(Prefix+v.Name, "ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_%s", v.Name)
				known[Prefix+v.Name] = true
			}
		}
	}
	l.checkAddresses(cfg)
	l.warnUnknown(known)

	if len(l.problems) > 0 {
		return nil, &Error{Problems: l.problems}
	}
	cfg.Warnings = l.warnings
	return cfg, nil
}

func markRouteVars(known map[string]bool, prefix string) {
	for _, v := range Variables() {
		if v.PerRoute {
			known[prefix+v.Name] = true
		}
	}
}

// parse fills v from the environment with caarlos0/env, turning its
// errors into problems that name the full variable.
func (l *loader) parse(v any, prefix string) {
	err := env.ParseWithOptions(v, env.Options{Environment: l.env, Prefix: prefix})
	if err == nil {
		return
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		l.problem(prefix+"*", "%v", err)
		return
	}
	typ := reflect.TypeOf(v).Elem()
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			l.problem(prefix+"*", "%v", e)
			continue
		}
		f, _ := typ.FieldByName(pe.Name)
		name := prefix + f.Tag.Get("env")
		l.problem(name, "%q is not %s", l.env[name], describeType(pe.Type))
	}
}

func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration (e.g. 15s, 2m)"
	case reflect.TypeFor[bool]():
		return "a boolean (true or false)"
	case reflect.TypeFor[float64]():
		return "a number"
	}
	return "a valid " + t.String()
}

func (l *loader) checkGlobals(cfg *Config) {
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.problem(Prefix+"LOG_LEVEL", "%q is not one of debug, info, warn, error", cfg.LogLevel)
	}
	switch cfg.LogFormat {
	case "json", "console":
	default:
		l.problem(Prefix+"LOG_FORMAT", "%q is not one of json, console", cfg.LogFormat)
	}
	if cfg.ShutdownTimeout < 0 {
		l.problem(Prefix+"SHUTDOWN_TIMEOUT", "must not be negative")
	}
	if (cfg.CACertFile == "") != (cfg.CAKeyFile == "") {
		l.problem(Prefix+"CA_KEY_FILE", "CREDPROXY_CA_CERT_FILE and CREDPROXY_CA_KEY_FILE go together: set both or neither")
	}
}

// route loads and validates the route name whose variables start with prefix.
func (l *loader) route(name, prefix string) Route {
	var e routeEnv
	l.parse(&e, prefix)
	v := func(s string) string { return prefix + s }
	r := Route{
		Name: name, Prefix: prefix, Auth: Kind(strings.ToLower(strings.TrimSpace(e.Auth))),
		Listen: e.Listen, CSPClientID: e.CSPClientID, CSPOrgID: e.CSPOrgID,
		SplunkRealm: strings.ToLower(e.SplunkRealm), SplunkEmail: e.SplunkEmail, SplunkOrgID: e.SplunkOrgID,
		ClientID: e.ClientID, Audience: e.Audience, AuthStyle: strings.ToLower(e.AuthStyle),
		SubjectTokenFile: e.SubjectTokenFile, SubjectTokenType: e.SubjectTokenType,
		Scopes:    strings.FieldsFunc(e.Scopes, func(r rune) bool { return r == ',' || r == ' ' }),
		RefreshAt: e.RefreshAt, ExpiryMargin: e.ExpiryMargin, DefaultTTL: e.DefaultTTL,
		TokenWait: e.TokenWait, ExchangeTimeout: e.ExchangeTimeout, AllowInsecureUpstream: e.AllowInsecureUpstream,
	}
	if r.Listen == "" && name == DefaultRouteName && prefix == Prefix {
		r.Listen = "127.0.0.1:8080"
	}

	// The credential.
	switch {
	case r.Auth == "":
		l.problem(v("AUTH"), "required (one of %s)", kindList())
	case !slices.Contains(allKinds, r.Auth):
		l.problem(v("AUTH"), "%q is not a credential kind (one of %s)", e.Auth, kindList())
	}
	need := func(name, val string) {
		if strings.TrimSpace(val) == "" {
			l.problem(v(name), "required when %s=%s", v("AUTH"), r.Auth)
		}
	}
	switch r.Auth {
	case KindCSPAPIToken:
		r.CSPAPIToken = l.secret(prefix, "CSP_API_TOKEN", e.CSPAPIToken, e.CSPAPITokenFile, r.Auth, true)
	case KindCSPOAuthApp:
		need("CSP_CLIENT_ID", e.CSPClientID)
		r.CSPClientSecret = l.secret(prefix, "CSP_CLIENT_SECRET", e.CSPClientSecret, e.CSPClientSecretFile, r.Auth, true)
	case KindSplunkSession:
		need("SPLUNK_EMAIL", e.SplunkEmail)
		r.SplunkPassword = l.secret(prefix, "SPLUNK_PASSWORD", e.SplunkPassword, e.SplunkPasswordFile, r.Auth, true)
		if r.SplunkRealm != "" && !realmRE.MatchString(r.SplunkRealm) {
			l.problem(v("SPLUNK_REALM"), "%q is not a realm name (e.g. us1, eu0)", e.SplunkRealm)
		}
	case KindOAuth2ClientCredential:
		need("CLIENT_ID", e.ClientID)
		r.ClientSecret = l.secret(prefix, "CLIENT_SECRET", e.ClientSecret, e.ClientSecretFile, r.Auth, true)
	case KindOAuth2RefreshToken:
		r.RefreshToken = l.secret(prefix, "REFRESH_TOKEN", e.RefreshToken, e.RefreshTokenFile, r.Auth, true)
		r.ClientSecret = l.secret(prefix, "CLIENT_SECRET", e.ClientSecret, e.ClientSecretFile, r.Auth, false)
	case KindOAuth2TokenExchange:
		need("SUBJECT_TOKEN_FILE", e.SubjectTokenFile)
		r.ClientSecret = l.secret(prefix, "CLIENT_SECRET", e.ClientSecret, e.ClientSecretFile, r.Auth, false)
	case KindStatic:
		r.Static = l.secret(prefix, "TOKEN", e.Token, e.TokenFile, r.Auth, true)
	}
	if strings.HasPrefix(string(r.Auth), "oauth2-") {
		need("TOKEN_URL", e.TokenURL)
		if e.TokenURL != "" {
			r.TokenURL = l.url(v("TOKEN_URL"), e.TokenURL, r.AllowInsecureUpstream, v("ALLOW_INSECURE_UPSTREAM"))
		}
		if r.AuthStyle != "basic" && r.AuthStyle != "body" {
			l.problem(v("AUTH_STYLE"), "%q is not basic or body", e.AuthStyle)
		}
	}
	if r.Auth == KindCSPAPIToken || r.Auth == KindCSPOAuthApp {
		r.CSPURL = l.url(v("CSP_URL"), e.CSPURL, r.AllowInsecureUpstream, v("ALLOW_INSECURE_UPSTREAM"))
	}

	// Where it goes.
	upstream := e.Upstream
	if upstream == "" && r.Auth == KindSplunkSession {
		upstream = "https://api.signalfx.com"
		if r.SplunkRealm != "" {
			upstream = "https://api." + r.SplunkRealm + ".signalfx.com"
		}
	}
	if upstream == "" {
		l.problem(v("UPSTREAM"), "required: the https:// base URL of the API")
	} else {
		r.Upstream = l.url(v("UPSTREAM"), upstream, r.AllowInsecureUpstream, v("ALLOW_INSECURE_UPSTREAM"))
	}
	for _, h := range splitList(e.Hosts) {
		if hp, err := checkHost(h); err != nil {
			l.problem(v("HOSTS"), "%q: %v", h, err)
		} else {
			r.Hosts = append(r.Hosts, hp)
		}
	}
	r.Header, r.HeaderPrefix = "Authorization", "Bearer"
	if r.Auth == KindSplunkSession {
		r.Header, r.HeaderPrefix = "X-Sf-Token", ""
	}
	if e.Header != "" {
		if !validHeaderName(e.Header) {
			l.problem(v("HEADER"), "%q is not a valid header name", e.Header)
		} else if hopByHop[textproto.CanonicalMIMEHeaderKey(e.Header)] {
			l.problem(v("HEADER"), "%q is managed by HTTP itself and cannot carry a credential", e.Header)
		}
		r.Header = textproto.CanonicalMIMEHeaderKey(e.Header)
	}
	if p, set := l.env[v("HEADER_PREFIX")]; set {
		r.HeaderPrefix = strings.TrimRight(p, " ")
		if strings.ContainsAny(r.HeaderPrefix, "\r\n") {
			l.problem(v("HEADER_PREFIX"), "must not contain line breaks")
		}
	}

	// Timing.
	if r.RefreshAt < 0.1 || r.RefreshAt > 0.9 {
		l.problem(v("REFRESH_AT"), "%v is outside 0.1-0.9: the fraction of a token's lifetime after which it is renewed", r.RefreshAt)
	}
	if r.ExpiryMargin < 0 {
		l.problem(v("EXPIRY_MARGIN"), "must not be negative")
	}
	if r.DefaultTTL < 10*time.Second {
		l.problem(v("DEFAULT_TTL"), "%v is too short (at least 10s)", r.DefaultTTL)
	}
	if r.TokenWait < 0 || r.TokenWait > 5*time.Minute {
		l.problem(v("TOKEN_WAIT"), "%v is outside 0-5m", r.TokenWait)
	}
	if r.ExchangeTimeout <= 0 || r.ExchangeTimeout > 5*time.Minute {
		l.problem(v("EXCHANGE_TIMEOUT"), "%v is outside (0, 5m]", r.ExchangeTimeout)
	}
	if r.Listen == "" && l.env[Prefix+"FORWARD_ADDR"] == "" {
		l.warnings = append(l.warnings, fmt.Sprintf("route %s has neither %sLISTEN nor CREDPROXY_FORWARD_ADDR: nothing can use it", name, prefix))
	}
	return r
}

// secret reads a secret given inline (name) or as a file (name_FILE).
func (l *loader) secret(prefix, name, value, file string, kind Kind, required bool) secret.Ref {
	switch {
	case value != "" && file != "":
		l.problem(prefix+name+"_FILE", "set either %s%s or %s%s_FILE, not both", prefix, name, prefix, name)
	case file != "":
		return secret.Ref{File: file, Var: prefix + name + "_FILE"}
	case value != "":
		return secret.Ref{Value: secret.Secret(value), Var: prefix + name}
	case required:
		l.problem(prefix+name, "required (or %s%s_FILE) when %sAUTH=%s", prefix, name, prefix, kind)
	}
	return secret.Ref{}
}

// url parses an https base URL.
func (l *loader) url(name, raw string, insecureOK bool, insecureVar string) *url.URL {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		l.problem(name, "%q is not a URL", raw)
		return nil
	case u.Scheme == "http" && !insecureOK:
		l.problem(name, "%q: plain http would expose the credential; use https (or %s=true in tests)", raw, insecureVar)
		return nil
	case u.Scheme != "https" && u.Scheme != "http":
		l.problem(name, "%q: want an https:// URL", raw)
		return nil
	case u.Host == "" || u.Hostname() == "":
		l.problem(name, "%q has no host", raw)
		return nil
	case u.User != nil:
		l.problem(name, "must not contain user information")
		return nil
	case u.RawQuery != "" || u.Fragment != "":
		l.problem(name, "%q: a base URL has no query or fragment", raw)
		return nil
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			l.problem(name, "%q: bad port", raw)
			return nil
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u
}

// checkAddresses validates listener addresses and that no two collide.
func (l *loader) checkAddresses(cfg *Config) {
	used := map[string]string{}
	check := func(name, addr string) {
		if addr == "" {
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			l.problem(name, "%q is not host:port (e.g. 127.0.0.1:8080)", addr)
			return
		}
		if other, dup := used[addr]; dup && !strings.HasSuffix(addr, ":0") {
			l.problem(name, "%s is already used by %s", addr, other)
			return
		}
		used[addr] = name
		if !isLoopback(host) {
			l.warnings = append(l.warnings, fmt.Sprintf("%s=%s is not a loopback address: whoever reaches it can use the credential", name, addr))
		}
	}
	check(Prefix+"ADMIN_ADDR", cfg.AdminAddr)
	check(Prefix+"FORWARD_ADDR", cfg.ForwardAddr)
	for _, r := range cfg.Routes {
		check(r.Prefix+"LISTEN", r.Listen)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warnUnknown warns about CREDPROXY_ variables nobody reads: typos.
func (l *loader) warnUnknown(known map[string]bool) {
	var unknown []string
	for k := range l.env {
		if strings.HasPrefix(k, Prefix) && !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		msg := fmt.Sprintf("%s is not a credproxy variable and is ignored", k)
		if s := closest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		l.warnings = append(l.warnings, msg)
	}
}

// closest returns the known name within edit distance 2 of k, if any.
func closest(k string, known map[string]bool) string {
	best, bestD := "", 3
	for c := range known {
		if d := editDistance(k, c); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkHost validates a HOSTS entry: a host name or IP, with an optional
// port, lower-cased.
func checkHost(h string) (string, error) {
	if strings.Contains(h, "/") || strings.Contains(h, "@") {
		return "", errors.New("want a host name or host:port, not a URL")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		host, port = h, ""
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", errors.New("bad port")
		}
	}
	if host == "" || strings.ContainsAny(host, " \t") {
		return "", errors.New("bad host name")
	}
	h = strings.ToLower(host)
	if port != "" {
		h = net.JoinHostPort(h, port)
	}
	return h, nil
}

// hopByHop are headers HTTP itself manages.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true,
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func kindList() string {
	s := make([]string, len(allKinds))
	for i, k := range allKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
