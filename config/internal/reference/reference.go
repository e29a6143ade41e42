// Package reference renders docs/operators/configuration.md from config's
// table of variables (config.Variables), the same table that drives
// parsing, --help and the typo warnings, so that the page cannot drift
// from what credproxy reads.
//
// Regenerate the page with `go run ./config/internal/gendoc` from the
// repository root (or `go generate ./config/...`); config's
// TestConfigurationReference fails while it is not current.
package reference

//go:generate go run ../gendoc

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/credproxy/credproxy/config"
)

// Path is where the page lives, relative to the repository root.
const Path = "docs/operators/configuration.md"

// Command regenerates the page, run from the repository root.
const Command = "go run ./config/internal/gendoc"

// Markdown renders the configuration reference for vars, which are
// config.Variables() outside of tests.
func Markdown(vars []config.VarDoc) []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("<!-- Generated from config's table of variables by `%s`; do not edit. -->\n\n", Command)
	w("%s", intro)
	w("## Global variables\n\n")
	w("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range vars {
		if !v.PerRoute {
			w("| `%s` | %s | %s |\n", v.Name, code(v.Default), cell(v.Doc))
		}
	}
	w("\n%s", routeIntro)
	w("| variable | default | meaning |\n|---|---|---|\n")
	var secrets []string
	for _, v := range vars {
		if !v.PerRoute {
			continue
		}
		doc := cell(v.Doc)
		if v.Secret {
			secrets = append(secrets, "`"+v.Name+"`")
			doc = "**secret**: " + doc + " (or `" + v.Name + "_FILE`)"
		}
		w("| `%s` | %s | %s |\n", v.Name, code(v.Default), doc)
	}
	w("\n## Secrets\n\n")
	w("The %s secret variables are %s. ", count(len(secrets)), list(secrets))
	w("%s", secretsText)
	w("%s", notes)
	return b.Bytes()
}

// code formats a default value; an empty one stays empty.
func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

// cell makes s safe inside a table cell: no column break, and no
// <route> read as an HTML tag.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

func count(n int) string {
	words := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
	if n < len(words) {
		return words[n]
	}
	return fmt.Sprint(n)
}

// list joins items as English: "a, b and c".
func list(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

const intro = `# Configuration reference

credproxy reads only environment variables. This page lists every one of
them; ` + "`credproxy --help`" + ` prints the same list, from the same table in
` + "`config/load.go`" + ` that parses them.

- Bad configuration stops start-up with exit code 2 and one line per
  problem, naming the variable, e.g.
  ` + "`CREDPROXY_CSP_CLIENT_SECRET: required (or CREDPROXY_CSP_CLIENT_SECRET_FILE) when CREDPROXY_AUTH=csp-oauth-app`" + `.
- A ` + "`CREDPROXY_`" + ` variable that credproxy does not read is a warning
  naming the nearest real one; with a configuration error, these hints
  come first, since a misspelt variable is often what a "required"
  problem is about.
- ` + "`credproxy check`" + ` validates a configuration and does one exchange
  per route, reporting the result without a secret.
- White space around a value or a file's content is ignored.

`

const routeIntro = `## Route variables

Each route has its own set. Prefix them with ` + "`CREDPROXY_`" + ` for the single
default route, or with ` + "`CREDPROXY_<ROUTE>_`" + ` (the name upper-cased, ` + "`-`" + `
becomes ` + "`_`" + `) for each name in ` + "`CREDPROXY_ROUTES`" + `: ` + "`CREDPROXY_AUTH`" + ` for the
default route, ` + "`CREDPROXY_WAVEFRONT_AUTH`" + ` for a route named ` + "`wavefront`" + `.
A default that depends on other variables is given in the meaning.

`

const secretsText = `Each has a ` + "`_FILE`" + ` variant
naming a file that holds the value instead; prefer it, pointing at a
mounted Kubernetes Secret or a systemd credential:

- a secret file is read again at every exchange (` + "`TOKEN_FILE`" + ` every 5
  minutes, since a static token has no exchange; ` + "`LOCAL_CLIENT_SECRET_FILE`" + `
  at every token request), so a rotated secret takes effect without a
  restart;
- the value stays out of the process environment, which the same user
  and root can read (` + "`/proc/<pid>/environ`" + `);
- setting both a secret and its ` + "`_FILE`" + ` variant is an error.

` + "`SUBJECT_TOKEN_FILE`" + ` holds a credential too, and exists only as a file.

`

const notes = `## Notes

- ` + "`UPSTREAM`" + `'s path is a prefix the client cannot climb out of: see
  [the security model](../security.md#the-base-path-is-a-boundary).
  For ` + "`splunk-session`" + ` it defaults to ` + "`https://api.<realm>.signalfx.com`" + `
  from ` + "`SPLUNK_REALM`" + ` (no realm: ` + "`https://api.signalfx.com`" + `).
- ` + "`CREDPROXY_CA_KEY_FILE`" + ` is as sensitive as a credential: a client that
  trusts the CA accepts any certificate it signs. Keep it readable by
  credproxy alone; set both CA files or neither. ` + "`credproxy ca init DIR`" + `
  writes a pair.
- ` + "`REFRESH_AT`" + `, ` + "`EXPIRY_MARGIN`" + `, ` + "`DEFAULT_TTL`" + `, ` + "`TOKEN_WAIT`" + ` and
  ` + "`EXCHANGE_TIMEOUT`" + ` tune the [token lifecycle](token-lifecycle.md).
- ` + "`REFRESH_TOKEN_FILE`" + `: a refresh token the provider rotates is written
  back to the file (a temporary file renamed over it, then the directory
  synced) when it is writable, so that neither a restart nor a crash
  brings back a retired one.
- ` + "`LOCAL_CLIENT_SECRET`" + `, ` + "`TOKEN_SINK_FILE`" + ` and ` + "`TOKEN_SINK_MODE`" + `: see
  [local OAuth 2.0 and token sinks](local-oauth2-and-sinks.md).
- ` + "`CREDENTIAL_EXPIRES_AT`" + `: see [credential expiry](credential-expiry.md).
- ` + "`CREDPROXY_TOKEN_API=true`" + ` serves both token APIs on the admin
  listener, ` + "`GET /v1/token/<route>`" + ` and ` + "`POST /oauth2/token`" + `: see
  [endpoints](endpoints.md).
- ` + "`HEADER_PREFIX`" + ` must be printable ASCII; set it empty for a bare token
  (Splunk's ` + "`X-SF-Token`" + `).
- ` + "`CLIENT_KEYS_FILE`" + ` and ` + "`CREDPROXY_FORWARD_KEYS_FILE`" + ` are read at start, so
  that a bad file (unreadable, empty, a duplicate name or key, a key
  shorter than 16 bytes) stops it with exit code 2 and a message naming
  the file and the line, never the key; a changed file is read again
  while running. ` + "`ALLOW_UIDS`" + ` and ` + "`ALLOW_GIDS`" + ` names are looked up at start
  too (in ` + "`/etc/passwd`" + ` and ` + "`/etc/group`" + `).
- ` + "`ALLOW_UIDS`" + ` and ` + "`ALLOW_GIDS`" + ` need ` + "`LISTEN=unix:/path.sock`" + `: a TCP
  caller has no identity the kernel vouches for, so such a rule on a TCP
  listener would refuse everyone and is an error. ` + "`LISTEN`" + `,
  ` + "`CREDPROXY_ADMIN_ADDR`" + ` and ` + "`CREDPROXY_FORWARD_ADDR`" + ` take ` + "`unix:/absolute/path.sock`" + `
  (at most 107 bytes of path).
- ` + "`ALLOW`" + `: rules match the cleaned path (dot segments removed,
  percent-decoded); a rule that could never match one (` + "`//`" + `, ` + "`.`" + `, ` + "`..`" + `,
  a backslash, a percent-escape) is an error naming the rule.
`
