package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/identity"
	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/internal/rtpolicy"
	"github.com/credproxy/credproxy/internal/sdnotify"
	"github.com/credproxy/credproxy/internal/server"
	"github.com/credproxy/credproxy/internal/upstreamcheck"
	"github.com/credproxy/credproxy/mitm"
	"github.com/credproxy/credproxy/tokenapi"
)

// runProxy is the run command: the server of the environment's
// configuration, serving until ctx ends, with SIGHUP reloading, the
// sockets of a systemd socket unit taken, and systemd told
// (NOTIFY_SOCKET) when it is ready and when it stops.
func runProxy(ctx context.Context, env map[string]string, policy rtpolicy.Applied, stderr io.Writer) error {
	hangup, stopHangup := catchHangup()
	defer stopHangup()
	cfg, err := config.Load(env)
	if err != nil {
		return err
	}
	log, err := server.NewLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// The one place the process environment is read after main: go-systemd
	// reads LISTEN_FDS itself (listen.SystemdSockets says why).
	sockets, err := listen.SystemdSockets()
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, server.Options{
		Logger:   log,
		Hangup:   hangup,
		Notifier: sdnotify.New(env, log.Named("systemd")),
		Sockets:  sockets,
	})
	if err != nil {
		_ = sockets.CloseUnclaimed()
		return err
	}
	limit, limited := rtpolicy.CPULimit()
	procs := rtpolicy.ApplyProcs(env, rtpolicy.Sidecar(listenAddrs(cfg)...), limit, limited)
	log.Info("credproxy starting", zap.String("version", versionString()), zap.Int("routes", len(cfg.Routes)),
		zap.Object("runtime", policy), zap.Int("gomaxprocs", runtime.GOMAXPROCS(0)), zap.String("gomaxprocs_why", procs.Why))
	return srv.Serve(ctx)
}

// listenAddrs are the addresses of every listener cfg configures.
func listenAddrs(cfg *config.Config) []string {
	addrs := []string{cfg.AdminAddr, cfg.ForwardAddr}
	for _, r := range cfg.Routes {
		addrs = append(addrs, r.Listen)
	}
	return addrs
}

// check validates the configuration and does one exchange per route,
// reporting each result without secrets. It fails if any route fails.
func check(ctx context.Context, env map[string]string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(env)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err := server.CheckSinkPaths(cfg.Routes); err != nil {
		return err
	}
	client := exchange.NewHTTPClient()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tKIND\tRESULT\tDETAIL")
	failed := 0
	for _, rc := range cfg.Routes {
		// The upstream's row first: nothing is sent to it.
		upstreamOK := true
		if rc.Upstream != nil {
			if err := upstreamcheck.Check(ctx, rc.Upstream, upstreamcheck.Options{AllowInsecure: rc.AllowInsecureUpstream}); err != nil {
				upstreamOK = false
				fmt.Fprintf(tw, "%s\tupstream\tFAILED\t%v\n", rc.Name, err)
			} else {
				fmt.Fprintf(tw, "%s\tupstream\tok\t%s reached (TLS verified for https), nothing sent\n", rc.Name, rc.Upstream.Host)
			}
		}
		src, err := server.NewSource(rc, client)
		if err != nil {
			return err
		}
		tok, took, err := fetchOnce(ctx, rc, src)
		if err != nil {
			failed++
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t%v\n", rc.Name, rc.Auth, err)
			continue
		}
		var reported time.Time // zero: the answer gave none
		if c := tok.Credential; c != nil && c.ExpiryReported {
			reported = c.ExpiresAt
		}
		if r, ok := src.(exchange.Releaser); ok {
			// check must not leave a session behind.
			_ = r.Release(ctx, tok)
		}
		detail := "token without expiry"
		if !tok.Expiry.IsZero() {
			detail = fmt.Sprintf("token expires in %s", time.Until(tok.Expiry).Round(time.Second))
		}
		detail = fmt.Sprintf("%s (%s), exchange took %s", detail, tok.Value.Fingerprint(), took.Round(time.Millisecond))
		if cred, warning := credentialReport(ctx, rc, src, reported); cred != "" {
			detail += "; " + cred
			if warning != "" {
				fmt.Fprintf(stderr, "warning: %s\n", warning)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\tok\t%s\n", rc.Name, rc.Auth, detail)
		if !upstreamOK {
			failed++
		}
	}
	tw.Flush()
	// Auditing is global: off, stdout, or the file's path.
	fmt.Fprintf(stdout, "audit log: %s\n", cfg.AuditLog)
	if failed > 0 {
		return fmt.Errorf("%d of %d routes failed", failed, len(cfg.Routes))
	}
	return nil
}

// credentialReport is what check says of rc's long-lived credential
// (credexpiry.Report, with the thresholds of a running credproxy): what
// the configuration, the identity service and the answer (reported) say.
func credentialReport(ctx context.Context, rc config.Route, src exchange.Source, reported time.Time) (detail, warning string) {
	opts := credexpiry.ReportOptions{
		Route: rc.Name, Configured: rc.CredentialExpiresAt, ConfiguredBy: rc.Prefix + "CREDENTIAL_EXPIRES_AT",
		Reported: reported, LookupTimeout: rc.ExchangeTimeout,
	}
	if l, ok := src.(credexpiry.Lookup); ok {
		opts.Lookup = l
	}
	return credexpiry.Report(ctx, opts)
}

// printToken prints an access token for a route: the one a running
// credproxy holds, from its token API, when that credproxy serves the
// route as the same identity (tokenFromRunning); otherwise one fresh from
// an exchange of its own. stderr says which.
//
// The configuration is first loaded partially: without a secret (or
// without anything but the route names) a running credproxy may still
// answer. Exchanging needs it in full.
func printToken(ctx context.Context, env map[string]string, args []string, stdout, stderr io.Writer) error {
	partial, err := config.LoadPartial(env)
	if err != nil {
		return err
	}
	rc, err := tokenRoute(partial, args)
	if err != nil {
		return err
	}
	if tok, from, why := tokenFromRunning(ctx, partial.AdminAddr, *rc); tok != "" {
		fmt.Fprintf(stderr, "credproxy token: token from the credproxy at %s (route %s)\n", from, rc.Name)
		_, err = fmt.Fprintln(stdout, tok)
		return err
	} else if why != "" {
		fmt.Fprintf(stderr, "credproxy token: %s\n", why)
	}
	cfg, err := config.Load(env)
	if err != nil {
		fmt.Fprintf(stderr, "credproxy token: no running credproxy gave route %s's token, and an exchange needs the full configuration\n", rc.Name)
		return err
	}
	if rc, err = tokenRoute(cfg, []string{rc.Name}); err != nil {
		return err
	}
	src, err := server.NewSource(*rc, exchange.NewHTTPClient())
	if err != nil {
		return err
	}
	// A session token printed here is the caller's to use: it is not
	// ended, and it lives as long as the service gives it.
	tok, _, err := fetchOnce(ctx, *rc, src)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "credproxy token: token from a fresh exchange")
	_, err = fmt.Fprintln(stdout, tok.Value.Reveal())
	return err
}

// tokenRoute picks the route of `credproxy token [ROUTE]`.
func tokenRoute(cfg *config.Config, args []string) (*config.Route, error) {
	var names []string
	for _, rc := range cfg.Routes {
		names = append(names, rc.Name)
	}
	switch {
	case len(args) == 1:
		for i := range cfg.Routes {
			if cfg.Routes[i].Name == args[0] {
				return &cfg.Routes[i], nil
			}
		}
		return nil, &usageError{fmt.Sprintf("token: no route %q (routes: %s)", args[0], strings.Join(names, ", "))}
	case len(cfg.Routes) == 1:
		return &cfg.Routes[0], nil
	}
	return nil, &usageError{fmt.Sprintf("token: name a route (routes: %s)", strings.Join(names, ", "))}
}

// tokenFromRunning returns the token of the credproxy whose admin
// listener is adminAddr, and the address it was asked at, when that
// credproxy serves rc as the same identity (sameIdentity); otherwise ""
// and the reason worth telling the user ("" when no token API answered:
// nothing listening, the API off (404) or refused (403)).
func tokenFromRunning(ctx context.Context, adminAddr string, rc config.Route) (tok, from, why string) {
	host, port, err := net.SplitHostPort(adminAddr)
	if err != nil || port == "0" {
		// Port 0 is a new port at every start: no credproxy is found there.
		return "", "", ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	from = net.JoinHostPort(host, port)
	tr, why := tokenapi.Ask(ctx, from, rc.Name)
	if tr == nil {
		return "", "", why
	}
	if why := sameIdentity(rc, tr, from); why != "" {
		return "", "", why
	}
	return tr.AccessToken, from, ""
}

// sameIdentity returns "" when the token API's answer tr is for rc's
// identity, else why not. What must match depends on what rc has:
//   - a credential: the identity fingerprint (kind, identity URL, client
//     ID or user, organization, scopes, audience, and the credential);
//   - a kind but no credential: the principal fingerprint (all but the
//     credential);
//   - no kind: nothing but the route name, which the API's path holds.
func sameIdentity(rc config.Route, tr *tokenapi.Response, from string) string {
	if rc.Auth == "" {
		return ""
	}
	if tr.Principal == "" && tr.Identity == "" {
		return fmt.Sprintf("the credproxy at %s does not say which identity its route %s has (an older version?); not using its token", from, rc.Name)
	}
	mine, err := identity.Of(rc)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot compare with the credproxy at %s: %v", from, err)
	case mine.Identity != "" && tr.Identity == mine.Identity:
		return ""
	case mine.Identity == "" && tr.Principal == mine.Principal:
		return ""
	}
	return fmt.Sprintf("the credproxy at %s serves route %s as another identity than configured here; not using its token", from, rc.Name)
}

// fetchOnce does one exchange for a route, bounded by its exchange timeout.
func fetchOnce(ctx context.Context, rc config.Route, src exchange.Source) (exchange.Token, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, rc.ExchangeTimeout)
	defer cancel()
	start := time.Now()
	tok, err := src.Fetch(ctx)
	if err != nil {
		return exchange.Token{}, time.Since(start), fmt.Errorf("route %s: %w", rc.Name, err)
	}
	return tok, time.Since(start), nil
}

// caInit writes a new forward-proxy CA into dir: ca.pem, and ca-key.pem
// with mode 0600. An existing key is never overwritten. The CA lives
// mitm.DefaultCALifetime (two years); --hosts confines it with name
// constraints to the route hosts, so that trusting it cannot let anyone
// impersonate another site.
func caInit(args []string, stdout io.Writer) error {
	dir, hosts, err := caInitArgs(args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	host, _ := os.Hostname()
	ca, err := mitm.NewCAWith(mitm.CAOptions{
		Name:  fmt.Sprintf("credproxy CA %s %s", host, time.Now().UTC().Format("2006-01-02")),
		Hosts: hosts,
	})
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(dir); err != nil {
		return err
	}
	sum := sha256.Sum256(ca.Certificate().Raw)
	fmt.Fprintf(stdout, "wrote %s (certificate, SHA-256 %X, valid until %s)\nwrote %s (private key, mode 0600: keep it secret)\n",
		filepath.Join(dir, "ca.pem"), sum, ca.Certificate().NotAfter.UTC().Format(time.DateOnly), filepath.Join(dir, "ca-key.pem"))
	if len(hosts) > 0 {
		fmt.Fprintf(stdout, "the CA vouches only for %s (and their subdomains)\n", strings.Join(hosts, ", "))
	} else {
		fmt.Fprintln(stdout, "the CA can vouch for any host: give --hosts with the route hosts to confine it")
	}
	return nil
}

// caInitUsage is the ca command's usage line.
const caInitUsage = "usage: credproxy ca init [--hosts HOST,...] DIR"

// caInitArgs parses `init [--hosts H,...] DIR` (the flag before or after
// DIR). Each host must be a host name or an IP literal.
func caInitArgs(args []string) (dir string, hosts []string, err error) {
	if len(args) == 0 || args[0] != "init" {
		return "", nil, &usageError{caInitUsage}
	}
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	list := fs.String("hosts", "", "comma list of the host names and IP addresses the CA may vouch for")
	rest := args[1:]
	var dirs []string
	for {
		if err := fs.Parse(rest); err != nil {
			return "", nil, &usageError{fmt.Sprintf("ca init: %v\n%s", err, caInitUsage)}
		}
		if fs.NArg() == 0 {
			break
		}
		dirs, rest = append(dirs, fs.Arg(0)), fs.Args()[1:]
	}
	if len(dirs) != 1 {
		return "", nil, &usageError{caInitUsage}
	}
	for h := range strings.SplitSeq(*list, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if err := mitm.CheckHost(h); err != nil {
			return "", nil, &usageError{fmt.Sprintf("ca init: --hosts: %v", err)}
		}
		hosts = append(hosts, strings.ToLower(h))
	}
	return dirs[0], hosts, nil
}
