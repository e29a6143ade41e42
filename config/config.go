// Package config turns credproxy's environment variables into one typed,
// validated Config.
//
// The variable names are part of the user contract (docs/design.md,
// "Configuration"). Load is the only place that looks at the environment,
// and it receives the environment as a map: components get plain values.
// Validation reports every problem at once, one line per problem naming the
// variable, after the names of unknown variables (typos), so that a broken
// deployment is fixed in one round trip.
//
// Load reads nothing but the environment, with two exceptions made so that
// a mistake stops the start instead of refusing every caller later: it
// parses the client keys files (CLIENT_KEYS_FILE,
// CREDPROXY_FORWARD_KEYS_FILE), reporting a bad one by file and line and
// never a key, and it resolves the user and group names of ALLOW_UIDS and
// ALLOW_GIDS (/etc/passwd, /etc/group). Secret files are only named: the
// exchanges read them anew every time.
package config

import (
	"io/fs"
	"net/url"
	"time"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/internal/secret"
)

// Kind is a credential kind, the value of CREDPROXY_AUTH.
type Kind string

// The credential kinds of the contract.
const (
	KindCSPAPIToken            Kind = "csp-api-token"
	KindCSPOAuthApp            Kind = "csp-oauth-app"
	KindSplunkSession          Kind = "splunk-session"
	KindOAuth2ClientCredential Kind = "oauth2-client-credentials"
	KindOAuth2RefreshToken     Kind = "oauth2-refresh-token"
	KindOAuth2TokenExchange    Kind = "oauth2-token-exchange"
	KindStatic                 Kind = "static"
)

// DefaultRouteName is the name of the single route configured without
// CREDPROXY_ROUTES.
const DefaultRouteName = "default"

// Config is credproxy's whole configuration.
type Config struct {
	// AdminAddr is CREDPROXY_ADMIN_ADDR: /healthz, /readyz, /metrics,
	// /ca.pem and, with TokenAPI, the token API.
	AdminAddr string
	// ForwardAddr is CREDPROXY_FORWARD_ADDR; empty means forward mode is off.
	ForwardAddr string
	// CACertFile and CAKeyFile are CREDPROXY_CA_CERT_FILE and
	// CREDPROXY_CA_KEY_FILE; both empty means an ephemeral CA.
	CACertFile, CAKeyFile string
	// ForwardDenyOthers is CREDPROXY_FORWARD_DENY_OTHERS.
	ForwardDenyOthers bool
	// ForwardKeysFile is CREDPROXY_FORWARD_KEYS_FILE: the client keys
	// (edge.ParseKeysFile's format) the forward listener requires in
	// Proxy-Authorization; empty means none is required. Load has parsed
	// it once; the listener follows it with edge.NewKeys.
	ForwardKeysFile string
	// TokenAPI is CREDPROXY_TOKEN_API.
	TokenAPI bool
	// AllowedHosts is CREDPROXY_ALLOWED_HOSTS: Host names (lower case,
	// no port, no trailing dot) every listener answers besides IP
	// literals and localhost. Set, it makes listeners bound off loopback
	// check Host too.
	AllowedHosts []string
	// AllowedOrigins is CREDPROXY_ALLOWED_ORIGINS: browser origins
	// (scheme://host[:port], lower case, no default port) whose requests
	// the listeners accept.
	AllowedOrigins []string
	// AuditLog is CREDPROXY_AUDIT_LOG: where the audit log goes (off,
	// stdout or a file), the target edge.NewAuditor takes.
	AuditLog edge.AuditTarget
	// LogLevel is CREDPROXY_LOG_LEVEL: debug, info, warn or error.
	LogLevel string
	// LogFormat is CREDPROXY_LOG_FORMAT: json or console.
	LogFormat string
	// ShutdownTimeout is CREDPROXY_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration
	// Routes holds one entry per route, in the order of CREDPROXY_ROUTES.
	Routes []Route
	// Warnings are problems that do not stop start-up (an unknown
	// CREDPROXY_ variable, a listener off loopback); the caller logs them.
	Warnings []string
}

// Route is one credential and where it is injected.
type Route struct {
	// Name is the route's name: "default", or one of CREDPROXY_ROUTES.
	Name string
	// Prefix is the prefix of the route's variables: "CREDPROXY_" or
	// "CREDPROXY_<NAME>_", used in messages.
	Prefix string
	// Auth is the credential kind.
	Auth Kind
	// Upstream is the base URL requests are forwarded to.
	Upstream *url.URL
	// Listen is the reverse-proxy address, host:port or
	// unix:/absolute/path.sock (listen.Listen's forms); empty means no
	// reverse listener.
	Listen string
	// ListenMode is the permission bits of Listen's unix socket
	// (LISTEN_MODE, default 0660), for listen.Options.Mode; meaningless
	// for TCP.
	ListenMode fs.FileMode
	// Hosts are extra host names (host or host:port, lower-cased) that get
	// this credential in forward mode.
	Hosts []string
	// Header is the injected header's name (canonical form).
	Header string
	// HeaderPrefix is put before the token, separated by one space; empty
	// means the bare token.
	HeaderPrefix string

	// ClientKeysFile is CLIENT_KEYS_FILE: the client keys (in
	// edge.ParseKeysFile's format) a caller of the reverse listener must
	// present in Header, after HeaderPrefix; empty means none is
	// required. Load has parsed it once; the listener follows it with
	// edge.NewKeys.
	ClientKeysFile string
	// Allow is ALLOW compiled: the requests the route serves; nil allows
	// everything.
	Allow *edge.Policy
	// AllowUIDs and AllowGIDs are ALLOW_UIDS and ALLOW_GIDS, names
	// resolved: the unix-socket callers the route serves
	// (listen.Allow{UIDs: AllowUIDs, GIDs: AllowGIDs}); both nil allows
	// every caller. Set, Listen is a unix socket.
	AllowUIDs, AllowGIDs []int

	// CSPURL is the VMware Cloud Services base URL.
	CSPURL *url.URL
	// CSPAPIToken is the user API token of csp-api-token.
	CSPAPIToken secret.Ref
	// CSPClientID, CSPClientSecret and CSPOrgID are the server-to-server
	// OAuth app of csp-oauth-app.
	CSPClientID     string
	CSPClientSecret secret.Ref
	CSPOrgID        string

	// Splunk session login (splunk-session).
	SplunkRealm    string
	SplunkEmail    string
	SplunkPassword secret.Ref
	SplunkOrgID    string

	// Generic OAuth 2.0 kinds.
	TokenURL         *url.URL
	ClientID         string
	ClientSecret     secret.Ref
	Scopes           []string
	Audience         string
	AuthStyle        AuthStyle
	RefreshToken     secret.Ref
	SubjectTokenFile string
	SubjectTokenType string

	// Static is the token of the static kind.
	Static secret.Ref

	// RefreshAt is the fraction of a token's lifetime after which it is
	// renewed (REFRESH_AT).
	RefreshAt float64
	// ExpiryMargin is EXPIRY_MARGIN; zero means automatic: the smaller of
	// 10 s and 10% of the token's lifetime.
	ExpiryMargin time.Duration
	// DefaultTTL is the lifetime assumed when a token response has none.
	DefaultTTL time.Duration
	// TokenWait is how long a request waits for a token before 503.
	TokenWait time.Duration
	// ExchangeTimeout bounds one exchange with the identity service.
	ExchangeTimeout time.Duration
	// AllowInsecureUpstream allows http:// upstream and token URLs.
	AllowInsecureUpstream bool

	// LocalClientSecret is the client secret a local OAuth 2.0 client
	// presents at the admin listener's POST /oauth2/token to get this
	// route's token (LOCAL_CLIENT_SECRET, LOCAL_CLIENT_SECRET_FILE). Unset
	// means any secret, or none, is accepted.
	LocalClientSecret secret.Ref
	// TokenSinkFile is the file the route's current token is written to
	// (TOKEN_SINK_FILE), an absolute, clean path; empty means no sink.
	TokenSinkFile string
	// TokenSinkMode is the permission bits of TokenSinkFile
	// (TOKEN_SINK_MODE, default 0600).
	TokenSinkMode fs.FileMode
	// CredentialExpiresAt is CREDENTIAL_EXPIRES_AT: when the long-lived
	// credential (not the access token) expires, as the user knows it;
	// zero when unset.
	CredentialExpiresAt time.Time
}

// AuthStyle is how an OAuth 2.0 client authenticates to the token
// endpoint (AUTH_STYLE).
type AuthStyle string

// The values of AUTH_STYLE.
const (
	// AuthStyleBasic sends client_id:client_secret in an Authorization:
	// Basic header (RFC 6749 2.3.1, the default).
	AuthStyleBasic AuthStyle = "basic"
	// AuthStyleBody sends client_id and client_secret in the form body.
	AuthStyleBody AuthStyle = "body"
)
