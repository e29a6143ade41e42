package validate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/credproxy/credproxy/config"
)

// imageRef is how every file names credproxy's image.
var imageRef = regexp.MustCompile(`^ghcr\.io/credproxy/credproxy:v\d+\.\d+\.\d+$`)

// globalVars and routeVars are the environment variables of the contract
// (docs/design.md "Configuration"), without the CREDPROXY_ and route
// prefixes.
var globalVars = []string{
	"ROUTES", "ADMIN_ADDR", "FORWARD_ADDR", "CA_CERT_FILE", "CA_KEY_FILE",
	"FORWARD_DENY_OTHERS", "TOKEN_API", "LOG_LEVEL", "LOG_FORMAT", "SHUTDOWN_TIMEOUT",
	// The local edge (docs/design.md "The local edge").
	"AUDIT_LOG", "ALLOWED_HOSTS", "ALLOWED_ORIGINS", "FORWARD_KEYS_FILE",
}

var routeVars = []string{
	"AUTH", "UPSTREAM", "LISTEN", "HOSTS", "HEADER", "HEADER_PREFIX",
	"CSP_URL", "CSP_API_TOKEN", "CSP_API_TOKEN_FILE", "CSP_CLIENT_ID", "CSP_CLIENT_SECRET",
	"CSP_CLIENT_SECRET_FILE", "CSP_ORG_ID",
	"SPLUNK_REALM", "SPLUNK_EMAIL", "SPLUNK_PASSWORD", "SPLUNK_PASSWORD_FILE", "SPLUNK_ORG_ID",
	"TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET", "CLIENT_SECRET_FILE", "SCOPES", "AUDIENCE", "AUTH_STYLE",
	"REFRESH_TOKEN", "REFRESH_TOKEN_FILE", "SUBJECT_TOKEN_FILE", "SUBJECT_TOKEN_TYPE",
	"TOKEN", "TOKEN_FILE", "REFRESH_AT", "EXPIRY_MARGIN", "DEFAULT_TTL", "TOKEN_WAIT",
	"ALLOW_INSECURE_UPSTREAM",
	// The local edge.
	"LISTEN_MODE", "ALLOW_UIDS", "ALLOW_GIDS", "CLIENT_KEYS_FILE", "ALLOW",
}

// inlineSecrets are the route variables that hold a secret by value; the
// deployment files use their *_FILE form only.
var inlineSecrets = []string{"CSP_API_TOKEN", "CSP_CLIENT_SECRET", "SPLUNK_PASSWORD", "CLIENT_SECRET", "REFRESH_TOKEN", "TOKEN"}

// kindNeeds lists, per credential kind, the route variables a working
// route must set.
var kindNeeds = map[string][]string{
	"csp-api-token":             {"UPSTREAM", "CSP_API_TOKEN_FILE"},
	"csp-oauth-app":             {"UPSTREAM", "CSP_CLIENT_ID", "CSP_CLIENT_SECRET_FILE"},
	"splunk-session":            {"SPLUNK_REALM", "SPLUNK_EMAIL", "SPLUNK_PASSWORD_FILE"},
	"oauth2-client-credentials": {"UPSTREAM", "TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET_FILE"},
	"oauth2-refresh-token":      {"UPSTREAM", "TOKEN_URL", "REFRESH_TOKEN_FILE"},
	"oauth2-token-exchange":     {"UPSTREAM", "TOKEN_URL", "SUBJECT_TOKEN_FILE"},
	"static":                    {"UPSTREAM", "TOKEN_FILE"},
}

// route is one route's settings, by variable name without prefix.
type route struct {
	name string
	vars map[string]string
}

// checkEnv checks a credproxy environment against the contract: every
// name is a contract variable, secrets come from files only, and each
// route sets what its kind needs. It returns the routes it found.
func checkEnv(env map[string]string) ([]route, []error) {
	var errs []error
	// credproxy's own configuration loader must accept the environment as
	// it stands; its warnings (an unknown variable: a typo) fail too,
	// except the expected one about listeners off loopback.
	cfg, err := config.Load(env)
	if err != nil {
		errs = append(errs, fmt.Errorf("credproxy refuses this configuration: %w", err))
	} else {
		for _, w := range cfg.Warnings {
			if !strings.Contains(w, "not a loopback address") {
				errs = append(errs, fmt.Errorf("credproxy warns: %s", w))
			}
		}
	}
	names := []string{""}
	prefixes := map[string]string{"": "CREDPROXY_"}
	if rs, ok := env["CREDPROXY_ROUTES"]; ok {
		names = nil
		prefixes = map[string]string{}
		for _, n := range strings.Split(rs, ",") {
			n = strings.TrimSpace(n)
			names = append(names, n)
			prefixes[n] = "CREDPROXY_" + strings.ToUpper(n) + "_"
		}
	}
	routes := map[string]*route{}
	for _, n := range names {
		routes[n] = &route{name: n, vars: map[string]string{}}
	}
	for k, v := range env {
		if !strings.HasPrefix(k, "CREDPROXY_") {
			continue
		}
		if slices.Contains(globalVars, strings.TrimPrefix(k, "CREDPROXY_")) {
			continue
		}
		found := false
		for n, p := range prefixes {
			if s, ok := strings.CutPrefix(k, p); ok && slices.Contains(routeVars, s) {
				if slices.Contains(inlineSecrets, s) {
					errs = append(errs, fmt.Errorf("%s: a secret by value; use %s_FILE", k, k))
				}
				routes[n].vars[s] = v
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s: not a credproxy variable (routes %q)", k, names))
		}
	}
	var out []route
	for _, n := range names {
		r := routes[n]
		kind := r.vars["AUTH"]
		needs, ok := kindNeeds[kind]
		if !ok {
			errs = append(errs, fmt.Errorf("route %q: AUTH %q is not a credential kind", n, kind))
		}
		for _, v := range needs {
			if r.vars[v] == "" && !(v == "UPSTREAM" && kind == "splunk-session") {
				errs = append(errs, fmt.Errorf("route %q (%s): %s is not set", n, kind, v))
			}
		}
		out = append(out, *r)
	}
	return out, errs
}
