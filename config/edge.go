package config

import (
	"strings"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/internal/listen"
)

// The variables of the local edge (docs/design.md, "The local edge"): who
// may spend a route's credential, on which requests, and the record of
// it. config uses the parsers of the packages that enforce them (edge,
// internal/listen), so that a value Load accepts is one they accept; both
// are leaf packages that must never import config.

// globalEdge loads the forward listener's client keys and the audit log.
func (l *loader) globalEdge(cfg *Config, g *globalEnv) {
	const keysVar = Prefix + "FORWARD_KEYS_FILE"
	cfg.ForwardKeysFile = l.keysFile(keysVar, g.ForwardKeysFile)
	if cfg.ForwardKeysFile != "" && cfg.ForwardAddr == "" {
		l.warn("%s has no effect without %sFORWARD_ADDR", keysVar, Prefix)
	}
	audit, err := edge.ParseAuditTarget(strings.TrimSpace(g.AuditLog))
	if err != nil {
		l.problem(Prefix+"AUDIT_LOG", "%v", err)
	}
	cfg.AuditLog = audit
}

// routeEdge loads a route's client keys, request policy, allowed peers
// and socket mode.
func (l *loader) routeEdge(r *Route, e *routeEnv) {
	r.ClientKeysFile = l.keysFile(r.Prefix+"CLIENT_KEYS_FILE", e.ClientKeysFile)
	if p, err := edge.ParsePolicy(e.Allow); err != nil {
		l.problem(r.Prefix+"ALLOW", "%v", err)
	} else {
		r.Allow = p
	}
	l.routePeers(r, e)
	l.routeListenMode(r, e)
}

// keysFile returns the path of a keys file, after parsing the file once:
// a bad file (unreadable, empty, a duplicate name or key, a key shorter
// than 16 bytes) stops the start naming the file and the line, never a
// key, rather than refusing every caller later. LoadPartial does not read
// it: `credproxy token` needs no keys, and may run as a user who cannot
// read them.
func (l *loader) keysFile(variable, path string) string {
	path = strings.TrimSpace(path)
	if path == "" || l.partial {
		return path
	}
	if _, err := edge.ParseKeysFile(path); err != nil {
		l.problem(variable, "%v", err)
	}
	return path
}

// routePeers loads ALLOW_UIDS and ALLOW_GIDS. Only a unix socket's callers
// have an identity the kernel vouches for: a rule on a route without one
// would refuse every caller, which is a mistake, not a policy.
func (l *loader) routePeers(r *Route, e *routeEnv) {
	unix := strings.HasPrefix(r.Listen, listen.UnixPrefix)
	for _, ids := range []struct {
		name, raw string
		parse     func(string) ([]int, error)
		dst       *[]int
	}{
		{"ALLOW_UIDS", e.AllowUIDs, listen.ParseUIDs, &r.AllowUIDs},
		{"ALLOW_GIDS", e.AllowGIDs, listen.ParseGIDs, &r.AllowGIDs},
	} {
		if strings.TrimSpace(ids.raw) == "" {
			continue
		}
		list, err := ids.parse(ids.raw)
		const need = "needs a unix socket in %sLISTEN (unix:/path.sock): "
		switch {
		case err != nil:
			l.problem(r.Prefix+ids.name, "%v", err)
		case unix:
			*ids.dst = list
		case r.Listen == "":
			l.problem(r.Prefix+ids.name, need+"%sLISTEN is unset", r.Prefix, r.Prefix)
		default:
			l.problem(r.Prefix+ids.name, need+"a caller on TCP (%sLISTEN=%s) has no identity the kernel vouches for, so every one would be refused",
				r.Prefix, r.Prefix, r.Listen)
		}
	}
}

// routeListenMode loads LISTEN_MODE, and warns when it does nothing or
// lets every local user spend the credential unchecked.
func (l *loader) routeListenMode(r *Route, e *routeEnv) {
	v := func(s string) string { return r.Prefix + s }
	r.ListenMode = listen.DefaultMode
	mode, err := listen.ParseMode(strings.TrimSpace(e.ListenMode))
	if err != nil {
		l.problem(v("LISTEN_MODE"), "%v", err)
		return
	}
	r.ListenMode = mode
	unix := strings.HasPrefix(r.Listen, listen.UnixPrefix)
	checked := r.AllowUIDs != nil || r.AllowGIDs != nil || r.ClientKeysFile != ""
	switch {
	case !unix && strings.TrimSpace(l.env[v("LISTEN_MODE")]) != "":
		l.warn("%s has no effect without a unix socket in %s (unix:/path.sock)", v("LISTEN_MODE"), v("LISTEN"))
	case unix && mode&0o002 != 0 && !checked:
		l.warn("%s=%04o lets every local user connect to route %s's socket %s and spend its credential (set %s, %s or %s, or a mode such as 0660)",
			v("LISTEN_MODE"), uint32(mode), r.Name, strings.TrimPrefix(r.Listen, listen.UnixPrefix), v("ALLOW_UIDS"), v("ALLOW_GIDS"), v("CLIENT_KEYS_FILE"))
	}
}
