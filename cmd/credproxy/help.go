package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/credproxy/credproxy/config"
)

// helpWidth is the widest line of any help text.
const helpWidth = 100

const helpHead = `credproxy: a credential-exchange sidecar proxy.

New here? Run ` + "`credproxy demo`" + `: a fake identity service, an echo API and the proxy, on loopback.

credproxy holds a long-lived secret (a VMware Cloud Services API token or OAuth app, a Splunk
login, an OAuth 2.0 client secret or refresh token, or a static token), exchanges it for
short-lived access tokens, renews them ahead of expiry and puts them on your app's API calls.

Example: your app calls http://127.0.0.1:8080 instead of https://example.wavefront.com:
  export CREDPROXY_AUTH=csp-api-token CREDPROXY_UPSTREAM=https://example.wavefront.com
  export CREDPROXY_CSP_API_TOKEN_FILE=/etc/credproxy/csp-api-token
  credproxy check        # one exchange, a report, no secret shown
  credproxy run          # then: curl http://127.0.0.1:8080/api/v2/source

Commands (credproxy COMMAND --help for each):
  run                    run the proxy, configured from the environment (the default)
  check                  validate the configuration and do one exchange per route
  token [ROUTE]          print one access token (for scripts)
  exec [--] CMD [ARGS]   run CMD behind an ephemeral forward proxy and CA
  ca init DIR            write a new forward-proxy CA (--hosts: confined to them)
  ca bundle OUT          write the system roots plus credproxy's CA (for SSL_CERT_FILE)
  demo                   the embedded default, on loopback
  version                print the version

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
`

// commandHelp is each command's own help.
var commandHelp = map[string]string{
	"run": `Usage: credproxy [run]

Runs the proxy, configured from the environment (credproxy --help lists every variable):
a reverse listener per route that has LISTEN, the forward proxy when CREDPROXY_FORWARD_ADDR
is set, and the admin listener: /healthz, /readyz, /metrics, status page, /v1/token/, /oauth2/token.

Signals: SIGTERM or SIGINT drain and exit (a second one exits at once); SIGHUP renews every
route now and reloads the CA files, without dropping a connection.
`,
	"check": `Usage: credproxy check

Validates the configuration and does one exchange per route, then prints a report: the
kind, the result, the token's lifetime and fingerprint, never a secret or a token. Splunk
sessions it opens are ended again. Exit code 0 when every route got a token, 1 otherwise,
2 for a bad configuration.
`,
	"token": `Usage: credproxy token [ROUTE]

Prints one access token for ROUTE (the only route when there is one). It asks a running
credproxy's token API first (CREDPROXY_ADMIN_ADDR, when CREDPROXY_TOKEN_API=true there), so
that a script reuses the token credproxy holds, but takes it only when that credproxy serves
ROUTE as the same identity: the same kind, identity URL (CSP_URL, TOKEN_URL, Splunk's API
URL), client ID or user, organization, scopes and audience, and the same secret, compared by
fingerprint (the secret never leaves either process). Otherwise it does an exchange of its
own. Without a secret configured it can only ask: with AUTH set, all but the secret must
match; with no AUTH, the route name alone (CREDPROXY_ROUTES names the routes). stderr says
which answered: "token from the credproxy at 127.0.0.1:9901 (route default)" or "token
from a fresh exchange".

Example: curl -H "Authorization: Bearer $(credproxy token)" https://example.wavefront.com/api/v2/x
`,
	"exec": `Usage: credproxy exec [--] COMMAND [ARGS...]

Runs COMMAND behind an ephemeral forward proxy on a loopback port, with an ephemeral CA:
HTTPS_PROXY, HTTP_PROXY, SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
NODE_EXTRA_CA_CERTS, NODE_USE_ENV_PROXY=1 and JAVA_TOOL_OPTIONS (proxy and trust store,
before yours) are set for it, and the secrets credproxy holds by value are not in its
environment. COMMAND starts once every route holds a token; credproxy exits with its exit
code (128+N when signal N ended it). Signals are passed on to COMMAND. It binds none of
the configured listeners (LISTEN, CREDPROXY_ADMIN_ADDR, CREDPROXY_FORWARD_ADDR) and writes no
TOKEN_SINK_FILE: those belong to a credproxy service whose environment it may share.

Example: credproxy exec -- ./legacy-report.sh --since yesterday
`,
	"ca": `Usage: credproxy ca init [--hosts HOST,...] DIR
       credproxy ca bundle [--from URL] OUT

Writes a new forward-proxy CA into DIR: ca.pem (the certificate, for clients to trust) and
ca-key.pem (mode 0600), valid for two years. --hosts (the route hosts: UPSTREAM hosts and
HOSTS, comma-separated, no ports) confines it with X.509 name constraints, so that it can
vouch for those hosts (and their subdomains) and nothing else. Point CREDPROXY_CA_CERT_FILE
and CREDPROXY_CA_KEY_FILE at them; without them each process makes an ephemeral CA, confined
to the route hosts and valid 30 days (24 hours under exec), served at /ca.pem on the admin
listener.

ca bundle writes OUT: the system roots (SSL_CERT_FILE when set) followed by credproxy's CA,
for clients whose CA setting replaces the system roots (SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
CURL_CA_BUNDLE). The CA comes from --from (a running credproxy's admin address; its /ca.pem),
else CREDPROXY_CA_CERT_FILE, else CREDPROXY_ADMIN_ADDR (127.0.0.1:9901). An ephemeral CA
changes at every start: write the bundle again after a restart.
`,
	"demo": `Usage: credproxy demo

Starts, on loopback, a fake VMware Cloud Services (short tokens, so renewals show within a
minute), an echo API that shows the header it received, and credproxy between them, then
prints the commands to try. Nothing leaves the machine. Ctrl-C stops it.
`,
	"version": `Usage: credproxy version

Prints credproxy's version, the Go version and the platform.
`,
}

// usage prints the help of cmd, or the general help with every variable
// when cmd is "" or has no help of its own.
func usage(w io.Writer, cmd string) error {
	if text, ok := commandHelp[cmd]; ok {
		fmt.Fprint(w, text)
		return nil
	}
	fmt.Fprint(w, helpHead)
	fmt.Fprintln(w, "\nGlobal environment variables:")
	for _, v := range config.Variables() {
		if !v.PerRoute {
			printVar(w, v)
		}
	}
	fmt.Fprintln(w, "\nPer route, prefixed CREDPROXY_ for the single default route, or")
	fmt.Fprintln(w, "CREDPROXY_<ROUTE>_ for each name in CREDPROXY_ROUTES:")
	for _, v := range config.Variables() {
		if v.PerRoute {
			printVar(w, v)
		}
	}
	return nil
}

// printVar prints one variable: its name, then its doc wrapped to
// helpWidth.
func printVar(w io.Writer, v config.VarDoc) {
	text := v.Doc
	if v.Default != "" {
		text += " (default " + v.Default + ")"
	}
	const indent = 2 + 32 + 1
	lines := wrap(text, helpWidth-indent)
	fmt.Fprintf(w, "  %-32s %s\n", v.Name, lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(w, "%s%s\n", strings.Repeat(" ", indent), l)
	}
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}
