package config

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// defaultSinkMode is TOKEN_SINK_MODE's default, the envDefault of its
// field.
const defaultSinkMode = 0o600

// routeLocal loads what a route offers local clients besides the proxy:
// the client secret of the admin listener's OAuth 2.0 token endpoint, and
// the token sink. Whether the sink's directory exists is checked when the
// app starts: Load does no I/O.
func (l *loader) routeLocal(r *Route, e *routeEnv) {
	v := func(s string) string { return r.Prefix + s }
	r.LocalClientSecret = l.secret(r.Prefix, "LOCAL_CLIENT_SECRET", e.LocalClientSecret, e.LocalClientSecretFile, r.Auth, false)

	r.TokenSinkMode = defaultSinkMode
	if mode, ok := parseMode(e.TokenSinkMode); ok {
		r.TokenSinkMode = mode
	} else {
		l.problem(v("TOKEN_SINK_MODE"), "%q is not an octal file mode of at most 0777 (e.g. 0600, 0640)", strings.TrimSpace(e.TokenSinkMode))
	}
	sink := strings.TrimSpace(e.TokenSinkFile)
	switch {
	case sink == "":
		if strings.TrimSpace(l.env[v("TOKEN_SINK_MODE")]) != "" {
			l.warn("%s has no effect without %s", v("TOKEN_SINK_MODE"), v("TOKEN_SINK_FILE"))
		}
		return
	case !filepath.IsAbs(sink):
		l.problem(v("TOKEN_SINK_FILE"), "%q is not an absolute path", sink)
		return
	case strings.HasSuffix(sink, "/"):
		l.problem(v("TOKEN_SINK_FILE"), "%q names a directory; want a file in it, e.g. %stoken", sink, sink)
		return
	}
	r.TokenSinkFile = filepath.Clean(sink)
	if r.TokenSinkMode&0o004 != 0 {
		l.warn("%s=%04o lets every local user read route %s's token from %s", v("TOKEN_SINK_MODE"), uint32(r.TokenSinkMode), r.Name, r.TokenSinkFile)
	}
}

// parseMode parses an octal permission mode such as 0600, 640 or 0o640.
func parseMode(s string) (fs.FileMode, bool) {
	s = strings.TrimSpace(s)
	if t, ok := strings.CutPrefix(strings.ToLower(s), "0o"); ok {
		s = t
	}
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, false
	}
	return fs.FileMode(n), true
}

// checkLocal checks the local-client settings across routes: no two
// routes write one sink file, no sink overwrites a file credproxy reads
// (a secret, a keys file, the CA) or the audit log, the audit log is not
// such a file either, and a local client secret without the token API,
// or the token API on a route without one, is pointed out.
func (l *loader) checkLocal(cfg *Config) {
	reads := filesRead(cfg)
	if a := cfg.AuditLog.Path; a != "" {
		if variable, ok := reads[a]; ok {
			l.problem(Prefix+"AUDIT_LOG", "%s is also %s: credproxy would append audit lines to it", a, variable)
		} else {
			reads[a] = Prefix + "AUDIT_LOG"
		}
	}
	sinks := map[string]string{} // path -> route
	for _, r := range cfg.Routes {
		switch {
		case r.LocalClientSecret.IsSet() && !cfg.TokenAPI:
			l.warn("%s has no effect without CREDPROXY_TOKEN_API=true", r.LocalClientSecret.Var)
		case !r.LocalClientSecret.IsSet() && cfg.TokenAPI:
			l.warn("CREDPROXY_TOKEN_API=true and route %s has no %sLOCAL_CLIENT_SECRET_FILE (or %sLOCAL_CLIENT_SECRET): "+
				"POST /oauth2/token hands its token to any client that reaches the admin listener, with any secret or none", r.Name, r.Prefix, r.Prefix)
		}
		if r.TokenSinkFile == "" {
			continue
		}
		v := r.Prefix + "TOKEN_SINK_FILE"
		if other, dup := sinks[r.TokenSinkFile]; dup {
			l.problem(v, "%s is route %s's token sink already; each route needs a file of its own", r.TokenSinkFile, other)
			continue
		}
		sinks[r.TokenSinkFile] = r.Name
		if variable, ok := reads[r.TokenSinkFile]; ok {
			l.problem(v, "%s is also %s: credproxy would overwrite it with the token", r.TokenSinkFile, variable)
		}
	}
}

// filesRead maps the clean path of every file credproxy reads (secrets,
// keys files, the CA) to the first variable naming it.
func filesRead(cfg *Config) map[string]string {
	reads := map[string]string{}
	read := func(path, variable string) {
		if path != "" {
			if _, seen := reads[filepath.Clean(path)]; !seen {
				reads[filepath.Clean(path)] = variable
			}
		}
	}
	read(cfg.CACertFile, Prefix+"CA_CERT_FILE")
	read(cfg.CAKeyFile, Prefix+"CA_KEY_FILE")
	read(cfg.ForwardKeysFile, Prefix+"FORWARD_KEYS_FILE")
	for _, r := range cfg.Routes {
		for _, ref := range []struct{ file, variable string }{
			{r.CSPAPIToken.File, r.CSPAPIToken.Var}, {r.CSPClientSecret.File, r.CSPClientSecret.Var},
			{r.SplunkPassword.File, r.SplunkPassword.Var}, {r.ClientSecret.File, r.ClientSecret.Var},
			{r.RefreshToken.File, r.RefreshToken.Var}, {r.Static.File, r.Static.Var},
			{r.LocalClientSecret.File, r.LocalClientSecret.Var}, {r.SubjectTokenFile, r.Prefix + "SUBJECT_TOKEN_FILE"},
			{r.ClientKeysFile, r.Prefix + "CLIENT_KEYS_FILE"},
		} {
			read(ref.file, ref.variable)
		}
	}
	return reads
}
