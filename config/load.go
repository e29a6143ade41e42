package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/textproto"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/caarlos0/env/v11"

	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/internal/suggest"
)

// Prefix starts every credproxy variable.
const Prefix = "CREDPROXY_"

// allKinds is every contract value of AUTH, in documentation order. Every
// one has an exchange in this version; a future kind whose exchange is not
// written yet would be refused here before it reaches the command.
var allKinds = []Kind{KindCSPAPIToken, KindCSPOAuthApp, KindSplunkSession, KindOAuth2ClientCredential, KindOAuth2RefreshToken, KindOAuth2TokenExchange, KindStatic}

// Defaults that depend on more than one variable, so that they cannot be
// envDefault tags.
const (
	defaultListen       = "127.0.0.1:8080"
	defaultHeader       = "Authorization"
	defaultHeaderPrefix = "Bearer"
	splunkHeader        = "X-Sf-Token" // X-SF-Token in canonical form
)

// globalEnv and routeEnv are the one table of credproxy's variables: Load
// parses them with caarlos0/env, Variables documents them from their tags
// (env, envDefault, doc, and secret for credentials), and any CREDPROXY_
// variable not in them is reported as unknown. The field order is the
// order of --help and of problems in an *Error.
type globalEnv struct {
	Routes            string        `env:"ROUTES" doc:"comma list of route names (unset: one route named default)"`
	AdminAddr         string        `env:"ADMIN_ADDR" envDefault:"127.0.0.1:9901" doc:"admin listener: /healthz, /readyz, /metrics, /ca.pem, token API"`
	ForwardAddr       string        `env:"FORWARD_ADDR" doc:"forward-proxy listener, e.g. 127.0.0.1:3128 (unset: off)"`
	CACertFile        string        `env:"CA_CERT_FILE" doc:"forward-proxy CA certificate (unset: ephemeral CA)"`
	CAKeyFile         string        `env:"CA_KEY_FILE" doc:"forward-proxy CA private key"`
	ForwardDenyOthers bool          `env:"FORWARD_DENY_OTHERS" envDefault:"false" doc:"refuse forward-proxy traffic to hosts of no route"`
	ForwardKeysFile   string        `env:"FORWARD_KEYS_FILE" doc:"client keys file (one key a line, optionally name:key) the forward listener requires in Proxy-Authorization, as HTTPS_PROXY=http://name:key@host:port sends it; read at start, re-read when it changes (unset: no key required)"`
	TokenAPI          bool          `env:"TOKEN_API" envDefault:"false" doc:"serve GET /v1/token/<route> on the admin listener"`
	AllowedHosts      string        `env:"ALLOWED_HOSTS" doc:"comma list of Host names the listeners answer besides IP addresses and localhost (DNS-rebinding protection; set, it applies off loopback too)"`
	AllowedOrigins    string        `env:"ALLOWED_ORIGINS" doc:"comma list of browser origins (scheme://host[:port]) whose requests the listeners accept, e.g. https://grafana.example.com"`
	AuditLog          string        `env:"AUDIT_LOG" envDefault:"off" doc:"one JSON line per decision on a credential: off, stdout, or an absolute file path (appended, mode 0600, reopened on SIGHUP)"`
	LogLevel          string        `env:"LOG_LEVEL" envDefault:"info" doc:"debug, info, warn or error"`
	LogFormat         string        `env:"LOG_FORMAT" envDefault:"json" doc:"json or console"`
	ShutdownTimeout   time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s" doc:"drain time on SIGTERM"`
}

// routeEnv holds one route's variables, without their prefix.
type routeEnv struct {
	Auth                  string        `env:"AUTH" doc:"credential kind: csp-api-token, csp-oauth-app, splunk-session, oauth2-client-credentials, oauth2-refresh-token, oauth2-token-exchange, static"`
	Upstream              string        `env:"UPSTREAM" doc:"https:// base URL requests are forwarded to"`
	Listen                string        `env:"LISTEN" doc:"reverse-proxy address, host:port or unix:/absolute/path.sock (default route: 127.0.0.1:8080; named routes: unset means none)"`
	ListenMode            string        `env:"LISTEN_MODE" envDefault:"0660" doc:"permissions of LISTEN's unix socket, in octal (connecting needs write permission)"`
	Hosts                 string        `env:"HOSTS" doc:"extra host names (host or host:port) that get this credential in forward mode"`
	Header                string        `env:"HEADER" doc:"injected header (default Authorization; splunk-session: X-SF-Token)"`
	HeaderPrefix          string        `env:"HEADER_PREFIX" doc:"put before the token with a space (default Bearer; splunk-session: none; set empty: bare token)"`
	ClientKeysFile        string        `env:"CLIENT_KEYS_FILE" doc:"client keys file (one key a line, optionally name:key): LISTEN's callers must send one in HEADER, after HEADER_PREFIX, where the token goes; read at start, re-read when it changes (unset: no key required)"`
	Allow                 string        `env:"ALLOW" doc:"comma list of METHOD /path rules the route serves, e.g. GET /v2/**, POST /v2/datapoint (* is one path segment, ** any number, method * any); anything else gets 403 (unset: everything)"`
	AllowUIDs             string        `env:"ALLOW_UIDS" doc:"comma list of user ids or names allowed to call the route; needs LISTEN=unix:/path.sock, whose callers the kernel names (unset: any)"`
	AllowGIDs             string        `env:"ALLOW_GIDS" doc:"comma list of group ids or names (the caller's primary group) allowed to call the route, as ALLOW_UIDS"`
	CSPURL                string        `env:"CSP_URL" envDefault:"https://console.cloud.vmware.com" doc:"VMware Cloud Services base URL"`
	CSPAPIToken           string        `env:"CSP_API_TOKEN" secret:"true" doc:"CSP user API token (csp-api-token)"`
	CSPAPITokenFile       string        `env:"CSP_API_TOKEN_FILE" doc:"file holding it, read at every exchange"`
	CSPClientID           string        `env:"CSP_CLIENT_ID" doc:"CSP server-to-server app ID (csp-oauth-app)"`
	CSPClientSecret       string        `env:"CSP_CLIENT_SECRET" secret:"true" doc:"CSP app secret"`
	CSPClientSecretFile   string        `env:"CSP_CLIENT_SECRET_FILE" doc:"file holding it, read at every exchange"`
	CSPOrgID              string        `env:"CSP_ORG_ID" doc:"CSP organization the token is scoped to (optional)"`
	SplunkRealm           string        `env:"SPLUNK_REALM" doc:"Splunk Observability realm, e.g. us1 (splunk-session)"`
	SplunkEmail           string        `env:"SPLUNK_EMAIL" doc:"Splunk login email"`
	SplunkPassword        string        `env:"SPLUNK_PASSWORD" secret:"true" doc:"Splunk login password"`
	SplunkPasswordFile    string        `env:"SPLUNK_PASSWORD_FILE" doc:"file holding it, read at every exchange"`
	SplunkOrgID           string        `env:"SPLUNK_ORG_ID" doc:"Splunk organization ID (optional)"`
	TokenURL              string        `env:"TOKEN_URL" doc:"OAuth 2.0 token endpoint (oauth2-* kinds)"`
	ClientID              string        `env:"CLIENT_ID" doc:"OAuth 2.0 client ID"`
	ClientSecret          string        `env:"CLIENT_SECRET" secret:"true" doc:"OAuth 2.0 client secret"`
	ClientSecretFile      string        `env:"CLIENT_SECRET_FILE" doc:"file holding it, read at every exchange"`
	Scopes                string        `env:"SCOPES" doc:"OAuth 2.0 scopes, comma or space separated"`
	Audience              string        `env:"AUDIENCE" doc:"OAuth 2.0 audience"`
	AuthStyle             string        `env:"AUTH_STYLE" envDefault:"basic" doc:"OAuth 2.0 client authentication: basic or body"`
	RefreshToken          string        `env:"REFRESH_TOKEN" secret:"true" doc:"OAuth 2.0 refresh token (oauth2-refresh-token)"`
	RefreshTokenFile      string        `env:"REFRESH_TOKEN_FILE" doc:"file holding it, read at every exchange"`
	SubjectTokenFile      string        `env:"SUBJECT_TOKEN_FILE" doc:"subject token file for oauth2-token-exchange"`
	SubjectTokenType      string        `env:"SUBJECT_TOKEN_TYPE" envDefault:"urn:ietf:params:oauth:token-type:jwt" doc:"RFC 8693 subject token type"`
	Token                 string        `env:"TOKEN" secret:"true" doc:"static token (static)"`
	TokenFile             string        `env:"TOKEN_FILE" doc:"file holding it, re-read periodically"`
	RefreshAt             float64       `env:"REFRESH_AT" envDefault:"0.66" doc:"fraction of a token's lifetime after which it is renewed (0.1-0.9)"`
	ExpiryMargin          time.Duration `env:"EXPIRY_MARGIN" doc:"stop serving a token this long before expiry (unset: min of 10s and 10% of the lifetime)"`
	DefaultTTL            time.Duration `env:"DEFAULT_TTL" envDefault:"300s" doc:"lifetime assumed when a token response has none (at least 10s)"`
	TokenWait             time.Duration `env:"TOKEN_WAIT" envDefault:"5s" doc:"how long a request waits for a token before 503 (at most 5m)"`
	ExchangeTimeout       time.Duration `env:"EXCHANGE_TIMEOUT" envDefault:"10s" doc:"bound on one exchange with the identity service (at most 5m)"`
	LocalClientSecret     string        `env:"LOCAL_CLIENT_SECRET" secret:"true" doc:"client secret local OAuth 2.0 clients present at POST /oauth2/token for this route (unset: any or none)"`
	LocalClientSecretFile string        `env:"LOCAL_CLIENT_SECRET_FILE" doc:"file holding it, read at every token request"`
	TokenSinkFile         string        `env:"TOKEN_SINK_FILE" doc:"write the bare token to this file after every exchange, atomically; removed at shutdown (unset: off)"`
	TokenSinkMode         string        `env:"TOKEN_SINK_MODE" envDefault:"0600" doc:"permissions of TOKEN_SINK_FILE, in octal"`
	CredentialExpiresAt   string        `env:"CREDENTIAL_EXPIRES_AT" doc:"when the long-lived credential expires, RFC 3339 (e.g. 2027-06-30T00:00:00Z): warnings at 30, 7 and 1 days left"`
	AllowInsecureUpstream bool          `env:"ALLOW_INSECURE_UPSTREAM" envDefault:"false" doc:"allow http:// upstream and identity URLs (tests only)"`
}

// VarDoc documents one variable for `credproxy --help`.
type VarDoc struct {
	// Name is the full name of a global variable (CREDPROXY_ADMIN_ADDR),
	// or the suffix of a route variable (AUTH) when PerRoute.
	Name string
	// Default is the value used when the variable is unset or empty; ""
	// when there is none or it depends on other variables (see Doc).
	Default string
	// Doc says what the variable is, in one line.
	Doc string
	// PerRoute is true for the variables of a route.
	PerRoute bool
	// Secret is true for variables that hold a credential inline; each has
	// a _FILE variant, which keeps the value out of the environment.
	Secret bool
}

// Variables lists every variable credproxy reads: the globals first, then
// the route variables, each in a fixed documentation order.
func Variables() []VarDoc {
	var out []VarDoc
	add := func(t reflect.Type, prefix string, perRoute bool) {
		for _, f := range reflect.VisibleFields(t) {
			out = append(out, VarDoc{
				Name: prefix + f.Tag.Get("env"), Default: f.Tag.Get("envDefault"), Doc: f.Tag.Get("doc"),
				PerRoute: perRoute, Secret: f.Tag.Get("secret") == "true",
			})
		}
	}
	add(reflect.TypeFor[globalEnv](), Prefix, false)
	add(reflect.TypeFor[routeEnv](), "", true)
	return out
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Var is the variable at fault, e.g. CREDPROXY_UPSTREAM.
	Var string
	// Msg says what is wrong with it. It never contains a secret's value.
	Msg string
}

// Error is every problem found in the configuration, global variables
// first, then each route's in the order of CREDPROXY_ROUTES, each group in
// the order of Variables. It is what the command turns into exit code 2.
type Error struct {
	// Hints name the CREDPROXY_ variables credproxy does not read, with
	// the nearest real name when there is one: a misspelt variable is the
	// likeliest cause of a "required" problem, so Error prints them first.
	// They are the warnings a valid configuration would have about them.
	Hints []string
	// Problems are the problems, never empty.
	Problems []Problem
}

// Error returns the hints, then one line per problem, "VAR: msg".
func (e *Error) Error() string {
	lines := slices.Clone(e.Hints)
	for _, p := range e.Problems {
		lines = append(lines, p.Var+": "+p.Msg)
	}
	return strings.Join(lines, "\n")
}

// loader collects problems and warnings while loading.
type loader struct {
	env      map[string]string
	problems []Problem
	warnings []string
	// hints are the warnings about unknown variables, kept apart so that
	// an *Error can show them too.
	hints []string
	// failed holds the variables caarlos0/env could not parse: their field
	// holds a zero value, which must not be reported a second time as,
	// say, too short.
	failed map[string]bool
	// partial is LoadPartial's mode: what only an exchange needs is not
	// required.
	partial bool
}

func (l *loader) problem(v, format string, args ...any) {
	l.problems = append(l.problems, Problem{Var: v, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) warn(format string, args ...any) {
	l.warnings = append(l.warnings, fmt.Sprintf(format, args...))
}

var (
	routeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	realmRE     = regexp.MustCompile(`^[a-z0-9]+$`)
)

// Load reads and validates the configuration from environ, the process
// environment as a map. Secret files are named in the result, not read,
// because the exchanges read them anew every time; keys files are parsed
// once and user and group names looked up (see the package comment).
//
// On any problem it returns a nil Config and an *Error listing all of them.
// Otherwise Config.Warnings holds what the caller should log.
func Load(environ map[string]string) (*Config, error) {
	return load(environ, false)
}

// LoadPartial is Load for `credproxy token` deciding whether a running
// credproxy may answer: a route's kind, its credential, and what only an
// exchange needs (UPSTREAM, TOKEN_URL, the client ID or email) may be
// missing. What is set is validated as by Load, but keys files are not
// read: the command needs no keys, and may run as a user who cannot read
// them. The command loads the configuration in full before it exchanges
// itself.
func LoadPartial(environ map[string]string) (*Config, error) {
	return load(environ, true)
}

func load(environ map[string]string, partial bool) (*Config, error) {
	if environ == nil {
		// caarlos0/env falls back to the process environment when
		// Options.Environment is nil; Load must only ever see environ.
		environ = map[string]string{}
	}
	l := &loader{env: environ, failed: map[string]bool{}, partial: partial}
	var g globalEnv
	l.parse(&g, Prefix)
	cfg := &Config{
		AdminAddr:         strings.TrimSpace(g.AdminAddr),
		ForwardAddr:       strings.TrimSpace(g.ForwardAddr),
		CACertFile:        strings.TrimSpace(g.CACertFile),
		CAKeyFile:         strings.TrimSpace(g.CAKeyFile),
		ForwardDenyOthers: g.ForwardDenyOthers,
		TokenAPI:          g.TokenAPI,
		LogLevel:          strings.ToLower(strings.TrimSpace(g.LogLevel)),
		LogFormat:         strings.ToLower(strings.TrimSpace(g.LogFormat)),
		ShutdownTimeout:   g.ShutdownTimeout,
	}
	l.checkGlobals(cfg)
	l.globalEdge(cfg, &g)
	cfg.AllowedHosts = l.allowedHosts(g.AllowedHosts)
	cfg.AllowedOrigins = l.allowedOrigins(g.AllowedOrigins)

	routesSet := strings.TrimSpace(g.Routes) != ""
	if !routesSet {
		cfg.Routes = []Route{l.route(DefaultRouteName, Prefix, true)}
	} else {
		for _, n := range l.routeNames(g.Routes) {
			cfg.Routes = append(cfg.Routes, l.route(strings.ToLower(n.name), n.prefix, false))
		}
	}

	pos := positionsOf(cfg.Routes, routesSet)
	if routesSet {
		// A bare route variable (CREDPROXY_AUTH) configures nothing once
		// CREDPROXY_ROUTES is set; ignoring it silently would leave a
		// credential unused and the operator puzzled. Names that are also
		// a route's variable (CREDPROXY_REFRESH_TOKEN: route "refresh",
		// TOKEN) belong to that route.
		for _, v := range routeSuffixes() {
			name := Prefix + v
			if o, ok := pos[name]; ok && o.group == 0 && environ[name] != "" {
				l.problem(name, "ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_%s", v)
			}
		}
	}
	l.warnUnreachable(cfg)
	l.checkAddresses(cfg)
	l.checkSharedHosts(cfg)
	l.checkLocal(cfg)
	for _, r := range cfg.Routes {
		l.warnSplunkIngest(r)
		l.warnSplunkRealm(r)
	}
	l.warnUnknown(pos)

	if len(l.problems) > 0 {
		sort.SliceStable(l.problems, func(i, j int) bool {
			return pos.less(l.problems[i].Var, l.problems[j].Var)
		})
		return nil, &Error{Hints: l.hints, Problems: l.problems}
	}
	cfg.Warnings = append(l.warnings, l.hints...)
	return cfg, nil
}

// warnUnreachable warns about routes that no listener serves.
func (l *loader) warnUnreachable(cfg *Config) {
	for _, r := range cfg.Routes {
		if r.Listen != "" || cfg.ForwardAddr != "" || r.TokenSinkFile != "" {
			continue
		}
		if cfg.TokenAPI {
			l.warn("route %s has neither %sLISTEN nor CREDPROXY_FORWARD_ADDR: it is reachable only through the token API", r.Name, r.Prefix)
		} else {
			l.warn("route %s has neither %sLISTEN nor CREDPROXY_FORWARD_ADDR, and CREDPROXY_TOKEN_API is off: nothing can use it", r.Name, r.Prefix)
		}
	}
}

// routeName is one accepted entry of CREDPROXY_ROUTES.
type routeName struct{ name, prefix string }

// routeNames validates the list of CREDPROXY_ROUTES and returns the routes
// to load.
func (l *loader) routeNames(list string) []routeName {
	const v = Prefix + "ROUTES"
	names := splitList(list)
	if len(names) == 0 {
		l.problem(v, "%q lists no route names", list)
	}
	var out []routeName
	byPrefix := map[string]string{} // prefix -> name
	owner := map[string]string{}    // variable -> name of the route reading it
	suffixes := routeSuffixes()
	for _, name := range names {
		if !routeNameRE.MatchString(name) {
			l.problem(v, "route name %q: use letters, digits, '_' and '-', starting with a letter or digit", name)
			continue
		}
		prefix := Prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
		if other, dup := byPrefix[prefix]; dup {
			l.problem(v, "routes %q and %q both use the variables %s*", other, name, prefix)
			continue
		}
		byPrefix[prefix] = name
		// Route "a" reads CREDPROXY_A_CSP_CLIENT_ID, which is also route
		// "a_csp"'s CLIENT_ID: one variable would configure both, and a
		// credential meant for one upstream could be sent to the other.
		for _, s := range suffixes {
			if other, taken := owner[prefix+s]; taken {
				l.problem(v, "routes %q and %q both read %s: rename one of them", other, name, prefix+s)
				break
			}
		}
		for _, s := range suffixes {
			if _, taken := owner[prefix+s]; !taken {
				owner[prefix+s] = name
			}
		}
		out = append(out, routeName{name: name, prefix: prefix})
	}
	return out
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
		// ParseError names the struct field; its env tag gives the
		// variable. Only bool, float and duration fields can fail, and
		// none holds a secret, so quoting the value is safe.
		f, _ := typ.FieldByName(pe.Name)
		name := prefix + f.Tag.Get("env")
		l.failed[name] = true
		if pe.Type == reflect.TypeFor[time.Duration]() && durationSyntax.MatchString(strings.TrimSpace(l.env[name])) {
			l.problem(name, "%q is a duration too long to hold (at most 2562047h)", l.env[name])
			continue
		}
		l.problem(name, "%q is not %s", l.env[name], describeType(pe.Type))
	}
}

// durationSyntax is what time.ParseDuration reads: a value of this form
// that did not parse is out of range.
var durationSyntax = regexp.MustCompile(`^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration (e.g. 15s, 1m)"
	case reflect.TypeFor[bool]():
		return "a boolean (true or false)"
	case reflect.TypeFor[float64]():
		return "a number (e.g. 0.66)"
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
	switch {
	case cfg.CACertFile != "" && cfg.CAKeyFile == "":
		l.problem(Prefix+"CA_KEY_FILE", "required when CREDPROXY_CA_CERT_FILE is set (set both or neither)")
	case cfg.CACertFile == "" && cfg.CAKeyFile != "":
		l.problem(Prefix+"CA_CERT_FILE", "required when CREDPROXY_CA_KEY_FILE is set (set both or neither)")
	}
}

// route loads and validates the route name whose variables start with
// prefix; isDefault is true for the single route of a configuration
// without CREDPROXY_ROUTES.
func (l *loader) route(name, prefix string, isDefault bool) Route {
	var e routeEnv
	l.parse(&e, prefix)
	r := Route{
		Name:   name,
		Prefix: prefix,
		Auth:   Kind(strings.ToLower(strings.TrimSpace(e.Auth))),
		Listen: strings.TrimSpace(e.Listen),

		CSPClientID: strings.TrimSpace(e.CSPClientID),
		CSPOrgID:    strings.TrimSpace(e.CSPOrgID),

		SplunkRealm: strings.ToLower(strings.TrimSpace(e.SplunkRealm)),
		SplunkEmail: strings.TrimSpace(e.SplunkEmail),
		SplunkOrgID: strings.TrimSpace(e.SplunkOrgID),

		ClientID:         strings.TrimSpace(e.ClientID),
		Scopes:           splitScopes(e.Scopes),
		Audience:         strings.TrimSpace(e.Audience),
		AuthStyle:        AuthStyle(strings.ToLower(strings.TrimSpace(e.AuthStyle))),
		SubjectTokenFile: strings.TrimSpace(e.SubjectTokenFile),
		SubjectTokenType: strings.TrimSpace(e.SubjectTokenType),

		RefreshAt:             e.RefreshAt,
		ExpiryMargin:          e.ExpiryMargin,
		DefaultTTL:            e.DefaultTTL,
		TokenWait:             e.TokenWait,
		ExchangeTimeout:       e.ExchangeTimeout,
		AllowInsecureUpstream: e.AllowInsecureUpstream,
	}
	// An empty LISTEN is unset for caarlos0/env too, so the default
	// route cannot switch its reverse listener off; it has no reason to,
	// since forward mode needs a route all the same.
	if r.Listen == "" && isDefault {
		r.Listen = defaultListen
	}
	l.routeCredential(&r, &e)
	l.routeIdentityURLs(&r, &e)
	l.routeDestination(&r, &e)
	l.routeHeader(&r, &e)
	l.routeTiming(&r)
	l.routeLocal(&r, &e)
	l.routeEdge(&r, &e)
	l.routeCredentialExpiry(&r, &e)
	return r
}

// routeCredential checks the kind and loads the secrets it needs.
func (l *loader) routeCredential(r *Route, e *routeEnv) {
	v := func(s string) string { return r.Prefix + s }
	switch {
	case r.Auth == "" && l.partial:
	case r.Auth == "":
		l.problem(v("AUTH"), "required (one of %s)", kindList())
	case !slices.Contains(allKinds, r.Auth):
		l.problem(v("AUTH"), "%q is not a credential kind (one of %s)", strings.TrimSpace(e.Auth), kindList())
	}
	need := func(name, val string) {
		if val == "" && !l.partial {
			l.problem(v(name), "required when %s=%s", v("AUTH"), r.Auth)
		}
	}
	sec := func(name, value, file string, required bool) secret.Ref {
		return l.secret(r.Prefix, name, value, file, r.Auth, required && !l.partial)
	}
	switch r.Auth {
	case KindCSPAPIToken:
		r.CSPAPIToken = sec("CSP_API_TOKEN", e.CSPAPIToken, e.CSPAPITokenFile, true)
	case KindCSPOAuthApp:
		need("CSP_CLIENT_ID", r.CSPClientID)
		r.CSPClientSecret = sec("CSP_CLIENT_SECRET", e.CSPClientSecret, e.CSPClientSecretFile, true)
	case KindSplunkSession:
		need("SPLUNK_EMAIL", r.SplunkEmail)
		r.SplunkPassword = sec("SPLUNK_PASSWORD", e.SplunkPassword, e.SplunkPasswordFile, true)
		if r.SplunkRealm != "" && !realmRE.MatchString(r.SplunkRealm) {
			l.problem(v("SPLUNK_REALM"), "%q is not a realm name (letters and digits, e.g. us1, eu0)", strings.TrimSpace(e.SplunkRealm))
		}
	case KindOAuth2ClientCredential:
		need("CLIENT_ID", r.ClientID)
		r.ClientSecret = sec("CLIENT_SECRET", e.ClientSecret, e.ClientSecretFile, true)
	case KindOAuth2RefreshToken:
		r.RefreshToken = sec("REFRESH_TOKEN", e.RefreshToken, e.RefreshTokenFile, true)
		r.ClientSecret = sec("CLIENT_SECRET", e.ClientSecret, e.ClientSecretFile, false)
	case KindOAuth2TokenExchange:
		need("SUBJECT_TOKEN_FILE", r.SubjectTokenFile)
		r.ClientSecret = sec("CLIENT_SECRET", e.ClientSecret, e.ClientSecretFile, false)
	case KindStatic:
		r.Static = sec("TOKEN", e.Token, e.TokenFile, true)
	}
}

// routeIdentityURLs checks where tokens are got: the OAuth 2.0 token URL
// and client authentication, or CSP's base URL.
func (l *loader) routeIdentityURLs(r *Route, e *routeEnv) {
	v := func(s string) string { return r.Prefix + s }
	switch r.Auth {
	case KindOAuth2ClientCredential, KindOAuth2RefreshToken, KindOAuth2TokenExchange:
		tokenURL := strings.TrimSpace(e.TokenURL)
		switch {
		case tokenURL == "" && l.partial:
		case tokenURL == "":
			l.problem(v("TOKEN_URL"), "required when %s=%s", v("AUTH"), r.Auth)
		default:
			r.TokenURL = l.url(v("TOKEN_URL"), tokenURL, r.AllowInsecureUpstream, v("ALLOW_INSECURE_UPSTREAM"))
		}
		if r.AuthStyle != AuthStyleBasic && r.AuthStyle != AuthStyleBody {
			l.problem(v("AUTH_STYLE"), "%q is not basic or body", r.AuthStyle)
		}
	case KindCSPAPIToken, KindCSPOAuthApp:
		r.CSPURL = l.url(v("CSP_URL"), e.CSPURL, r.AllowInsecureUpstream, v("ALLOW_INSECURE_UPSTREAM"))
	}
}

// routeDestination checks where the credential goes: UPSTREAM (Splunk's
// from the realm by default) and HOSTS.
func (l *loader) routeDestination(r *Route, e *routeEnv) {
	v := func(s string) string { return r.Prefix + s }
	upstream := strings.TrimSpace(e.Upstream)
	if upstream == "" && r.Auth == KindSplunkSession && (r.SplunkRealm == "" || realmRE.MatchString(r.SplunkRealm)) {
		upstream = "https://api.signalfx.com"
		if r.SplunkRealm != "" {
			upstream = "https://api." + r.SplunkRealm + ".signalfx.com"
		}
	}
	switch {
	case upstream != "":
		r.Upstream = l.url(v("UPSTREAM"), upstream, r.AllowInsecureUpstream, v("ALLOW_INSECURE_UPSTREAM"))
	case r.Auth != KindSplunkSession && !l.partial: // a bad realm is reported already
		l.problem(v("UPSTREAM"), "required: the https:// base URL of the API")
	}
	for _, h := range splitList(e.Hosts) {
		if hp, err := checkHost(h); err != nil {
			l.problem(v("HOSTS"), "%q: %v", h, err)
		} else {
			r.Hosts = append(r.Hosts, hp)
		}
	}
}

// routeHeader sets how the credential goes: the header and its prefix.
func (l *loader) routeHeader(r *Route, e *routeEnv) {
	v := func(s string) string { return r.Prefix + s }
	r.Header, r.HeaderPrefix = defaultHeader, defaultHeaderPrefix
	if r.Auth == KindSplunkSession {
		r.Header, r.HeaderPrefix = splunkHeader, ""
	}
	if h := strings.TrimSpace(e.Header); h != "" {
		canon := textproto.CanonicalMIMEHeaderKey(h)
		switch {
		case !validHeaderName(h):
			l.problem(v("HEADER"), "%q is not a valid header name", h)
		case reservedHeaders[canon]:
			l.problem(v("HEADER"), "%q is managed by HTTP itself and cannot carry a credential", h)
		}
		r.Header = canon
	}
	// caarlos0/env cannot tell an empty HEADER_PREFIX from an unset one,
	// and empty is meaningful: the bare token.
	if p, set := l.env[v("HEADER_PREFIX")]; set {
		r.HeaderPrefix = strings.TrimSpace(p)
		switch {
		case !validHeaderValue(r.HeaderPrefix):
			l.problem(v("HEADER_PREFIX"), "must not contain control characters such as line breaks")
		case !printableASCII(r.HeaderPrefix):
			l.problem(v("HEADER_PREFIX"), "must be printable ASCII (an authentication scheme such as Bearer)")
		}
	}
}

// routeTiming checks the timing overrides. A variable that did not parse
// is reported already.
func (l *loader) routeTiming(r *Route) {
	v := func(s string) string { return r.Prefix + s }
	ok := func(s string) bool { return !l.failed[v(s)] }
	// The upper bound leaves room for the automatic expiry margin (at most
	// 10% of the lifetime): renewing later would leave a gap with no
	// token to serve. The negated form also refuses NaN.
	if ok("REFRESH_AT") && !(r.RefreshAt >= 0.1 && r.RefreshAt <= 0.9) {
		l.problem(v("REFRESH_AT"), "%v is outside 0.1-0.9: the fraction of a token's lifetime after which it is renewed", r.RefreshAt)
	}
	if ok("EXPIRY_MARGIN") && r.ExpiryMargin < 0 {
		l.problem(v("EXPIRY_MARGIN"), "%v must not be negative (unset: automatic)", r.ExpiryMargin)
	}
	if ok("DEFAULT_TTL") && r.DefaultTTL < 10*time.Second {
		l.problem(v("DEFAULT_TTL"), "%v is too short (at least 10s)", r.DefaultTTL)
	}
	if ok("TOKEN_WAIT") && (r.TokenWait < 0 || r.TokenWait > 5*time.Minute) {
		l.problem(v("TOKEN_WAIT"), "%v is outside 0-5m", r.TokenWait)
	}
	if ok("EXCHANGE_TIMEOUT") && (r.ExchangeTimeout <= 0 || r.ExchangeTimeout > 5*time.Minute) {
		l.problem(v("EXCHANGE_TIMEOUT"), "%v is outside 0-5m (0 excluded)", r.ExchangeTimeout)
	}
}

// routeCredentialExpiry reads CREDENTIAL_EXPIRES_AT. A date in the past
// is accepted: the credential may really have expired, which the expiry
// watcher then reports as an error, and refusing to start would take down
// the other routes with it.
func (l *loader) routeCredentialExpiry(r *Route, e *routeEnv) {
	raw := strings.TrimSpace(e.CredentialExpiresAt)
	if raw == "" {
		return
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		l.problem(r.Prefix+"CREDENTIAL_EXPIRES_AT", "%.40q is not an RFC 3339 time (e.g. 2027-06-30T00:00:00Z)", raw)
		return
	}
	r.CredentialExpiresAt = t
}

// warnSplunkIngest warns about a splunk-session route that sends its
// session token to an ingest host: Splunk accepts only org access tokens
// there (docs/protocols.md 2c), so every datapoint would get 401. It is a
// warning, not a problem: the host list may be wider than what the route
// is used for.
func (l *loader) warnSplunkIngest(r Route) {
	if r.Auth != KindSplunkSession {
		return
	}
	var found []string
	if r.Upstream != nil && isSplunkIngestHost(r.Upstream.Hostname()) {
		found = append(found, r.Prefix+"UPSTREAM "+r.Upstream.Hostname())
	}
	for _, h := range r.Hosts {
		host := h
		if hh, _, err := net.SplitHostPort(h); err == nil {
			host = hh
		}
		if isSplunkIngestHost(host) {
			found = append(found, r.Prefix+"HOSTS "+host)
		}
	}
	if len(found) == 0 {
		return
	}
	l.warn("route %s: %s is a Splunk ingest host, and a splunk-session token cannot authenticate ingest (/v2/datapoint, /v2/event): "+
		"send ingest through its own route with AUTH=static and an org access token in TOKEN_FILE", r.Name, strings.Join(found, ", "))
}

// warnSplunkRealm warns about a splunk-session route whose SPLUNK_REALM
// says one realm and whose UPSTREAM (where the session is made, and
// spent) is in another: SPLUNK_REALM only picks UPSTREAM's default, so
// one of the two is a mistake. An UPSTREAM of no known realm (a proxy, a
// test fake) is left alone.
func (l *loader) warnSplunkRealm(r Route) {
	if r.Auth != KindSplunkSession || r.SplunkRealm == "" || r.Upstream == nil {
		return
	}
	realm, ok := splunkRealmOf(r.Upstream.Hostname())
	if !ok || realm == r.SplunkRealm || (realm == "us0" && r.SplunkRealm == "") {
		return
	}
	l.warn("route %s: %sSPLUNK_REALM=%s contradicts %sUPSTREAM %s (realm %s): the session is made at UPSTREAM and SPLUNK_REALM is not used; "+
		"unset UPSTREAM (it defaults to the realm's API) or correct SPLUNK_REALM", r.Name, r.Prefix, r.SplunkRealm, r.Prefix, r.Upstream, realm)
}

// splunkRealmOf returns the realm of a Splunk Observability Cloud host:
// <service>.<realm>.signalfx.com, <service>.signalfx.com (realm us0), or
// <service>.<realm>.observability.splunkcloud.com; false for any other
// host.
func splunkRealmOf(host string) (string, bool) {
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(host), "."), ".")
	n := len(labels)
	switch {
	case n == 3 && labels[1]+"."+labels[2] == "signalfx.com":
		return "us0", true
	case n == 4 && labels[2]+"."+labels[3] == "signalfx.com",
		n == 5 && strings.Join(labels[2:], ".") == "observability.splunkcloud.com":
		return labels[1], true
	}
	return "", false
}

// isSplunkIngestHost reports whether host is one of Splunk Observability
// Cloud's ingest hosts: ingest (and rum-ingest, backfill) under
// signalfx.com, with or without a realm (none is us0), or under
// <realm>.observability.splunkcloud.com. The API and SignalFlow (stream)
// hosts accept session tokens and are not ingest hosts.
func isSplunkIngestHost(host string) bool {
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(host), "."), ".")
	switch labels[0] {
	case "ingest", "rum-ingest", "backfill":
	default:
		return false
	}
	rest := strings.Join(labels[1:], ".")
	switch {
	case rest == "signalfx.com":
		return true
	case len(labels) == 4 && labels[2]+"."+labels[3] == "signalfx.com":
		return true
	case len(labels) == 5 && strings.HasSuffix(rest, ".observability.splunkcloud.com"):
		return true
	}
	return false
}

// secret returns where the secret name comes from: inline (prefix+name)
// or a file (prefix+name+"_FILE"). Neither the value nor the file's content
// appears in a problem.
//
// Surrounding white space is removed from both, as from secret files: a
// value copied from a file or a Kubernetes Secret often ends in a newline,
// and no credential starts or ends with a space.
func (l *loader) secret(prefix, name, value, file string, kind Kind, required bool) secret.Ref {
	value, file = strings.TrimSpace(value), strings.TrimSpace(file)
	inline, fromFile := prefix+name, prefix+name+"_FILE"
	switch {
	case value != "" && file != "":
		l.problem(fromFile, "set either %s or %s, not both", inline, fromFile)
	case file != "":
		return secret.Ref{File: file, Var: fromFile}
	case value != "":
		return secret.Ref{Value: secret.New(value), Var: inline}
	case required:
		l.problem(inline, "required (or %s) when %sAUTH=%s", fromFile, prefix, kind)
	}
	return secret.Ref{}
}

// warnUnknown notes the CREDPROXY_ variables nobody reads: typos. The
// notes are warnings of a valid configuration and the first lines of an
// *Error. Their values are not shown; one may be a credential.
func (l *loader) warnUnknown(known positions) {
	var unknown []string
	for k := range l.env {
		if _, ok := known[k]; !ok && strings.HasPrefix(k, Prefix) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		hint := k + " is not a credproxy variable and is ignored"
		if s := closest(k, known); s != "" {
			hint += " (did you mean " + s + "?)"
		}
		l.hints = append(l.hints, hint)
	}
}

// position is where a variable's problems sort: group 0 holds the global
// variables (and, with CREDPROXY_ROUTES, the bare route variables), group
// i+1 the variables of route i; index is the position in Variables.
type position struct{ group, index int }

// positions maps every variable credproxy reads in a configuration to its
// position. It is also the set of known variables.
type positions map[string]position

// positionsOf returns the positions of the variables of a configuration
// with routes; routesSet tells whether CREDPROXY_ROUTES is set.
func positionsOf(routes []Route, routesSet bool) positions {
	o := positions{}
	globals, suffixes := 0, routeSuffixes()
	for _, v := range Variables() {
		if !v.PerRoute {
			o[v.Name] = position{0, globals}
			globals++
		}
	}
	// The first route to claim a name keeps it; routeNames reports the
	// overlap.
	for i, r := range routes {
		for j, s := range suffixes {
			if _, taken := o[r.Prefix+s]; !taken {
				o[r.Prefix+s] = position{i + 1, j}
			}
		}
	}
	if routesSet {
		for j, s := range suffixes {
			if _, taken := o[Prefix+s]; !taken {
				o[Prefix+s] = position{0, globals + j}
			}
		}
	}
	return o
}

// less orders problems by variable; variables credproxy does not read
// (the "CREDPROXY_*" of an unexpected parse error) go last.
func (o positions) less(a, b string) bool {
	pa, oka := o[a]
	pb, okb := o[b]
	switch {
	case !oka || !okb:
		return oka && !okb
	case pa.group != pb.group:
		return pa.group < pb.group
	}
	return pa.index < pb.index
}

// routeSuffixes are the names of the route variables, without prefix.
func routeSuffixes() []string {
	var s []string
	for _, v := range Variables() {
		if v.PerRoute {
			s = append(s, v.Name)
		}
	}
	return s
}

// closest returns the known name within edit distance 2 of k, if any,
// the alphabetically first of the nearest.
func closest(k string, known positions) string {
	return suggest.Closest(k, maps.Keys(known), 2)
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

// splitScopes splits a list of scopes separated by commas or white space;
// nil when there is none.
func splitScopes(s string) []string {
	scopes := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(scopes) == 0 {
		return nil
	}
	return scopes
}

func kindList() string {
	s := make([]string, len(allKinds))
	for i, k := range allKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
