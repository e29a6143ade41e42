package execrun

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/jobcontrol"
	"github.com/credproxy/credproxy/internal/server"
	"github.com/credproxy/credproxy/mitm"
)

// ExitError is how exec ends: with the exit code of its command (or
// 128+signal), or 126 or 127 when the command could not be started or
// found, as a shell would. Msg, when set, is told to the user; a command
// that simply exited non-zero has already said what it had to say.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("command exited with code %d", e.Code)
}

// CALifetime is how long exec's ephemeral CA lives: exec's command is a
// script or a job; a day covers it, and its trust files are gone when it
// ends (server.RunCALifetime says why ephemeral CAs are short-lived).
const CALifetime = 24 * time.Hour

// Options are what exec runs: the command and what it inherits.
type Options struct {
	// Args are COMMAND and its arguments; COMMAND is looked up in PATH.
	Args []string
	// Env is credproxy's environment: the configuration, and the
	// command's environment less the secrets (childEnv).
	Env map[string]string
	// Stdin, Stdout and Stderr are the command's; Stderr is credproxy's
	// log too.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// systemRootFiles are where Linux distributions and macOS keep the PEM
// bundle of trusted roots (the list crypto/x509 reads on Linux).
var systemRootFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

// maxBundle caps a CA bundle read from disk.
const maxBundle = 16 << 20

// isSecretVar reports whether an environment variable may carry one of
// credproxy's secrets by value: CREDPROXY_* names ending in _TOKEN,
// _SECRET or _PASSWORD (CSP_API_TOKEN, CSP_CLIENT_SECRET, SPLUNK_PASSWORD,
// CLIENT_SECRET, REFRESH_TOKEN, TOKEN, for any route, even a misspelt
// one). They are not passed to exec's command. The *_FILE variables stay:
// they hold paths, and the command runs as the same user, who can read
// those files anyway; everything else (routes, upstreams, log settings)
// stays so that the command can itself run `credproxy token` or `check`.
func isSecretVar(k string) bool {
	if !strings.HasPrefix(k, "CREDPROXY_") {
		return false
	}
	for _, s := range []string{"_TOKEN", "_SECRET", "_PASSWORD"} {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// Run is `credproxy exec`: it runs the configured routes behind a
// forward proxy on an ephemeral loopback port with an ephemeral CA, waits
// until every route holds a token, and runs the command with the proxy
// and CA variables set. No admin, reverse or configured forward listener
// is opened and no token sink written, whatever the environment says
// (execConfig). It returns *ExitError with the command's exit code, or
// 128+signal for a signal before the command started (internal/jobcontrol
// says how signals behave).
func Run(ctx context.Context, opts Options) error {
	args := opts.Args
	path, err := exec.LookPath(args[0])
	if err != nil {
		return &ExitError{Code: 127, Msg: fmt.Sprintf("exec: %v", err)}
	}
	sigs := jobcontrol.Catch()
	defer sigs.Stop()
	cfg, level, ignored, err := execConfig(opts.Env)
	if err != nil {
		return err
	}
	log, err := server.NewLogger(level, logFormat(cfg, opts), opts.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	px, guard, err := startProxy(ctx, cfg, log)
	if err != nil {
		return err
	}
	warnIgnored(log, ignored)
	defer func() { _ = px.shutdown() }()
	addr, err := px.ready(ctx, sigs)
	var xe *ExitError
	if errors.As(err, &xe) {
		return err
	}
	if err != nil {
		return fmt.Errorf("exec: not starting %s: %w", args[0], whyNoToken(err, cfg.Routes))
	}

	dir, err := os.MkdirTemp("", "credproxy-exec-")
	if err != nil {
		return fmt.Errorf("exec: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	trust, err := writeTrustFiles(dir, opts.Env, px.srv.ForwardCA(), log)
	if err != nil {
		return err
	}
	warnNoProxy(log, opts.Env, cfg.Routes)

	cmd := exec.Command(path, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Env = envList(childEnv(opts.Env, guard.proxyURL(addr), addr, trust))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.Stdin, opts.Stdout, opts.Stderr
	return runChild(cmd, px, sigs, log)
}

// logFormat is the format of exec's own messages: CREDPROXY_LOG_FORMAT
// when set, else console when they go to a terminal (a person reads
// them), else the configured default (JSON, for a job's log).
func logFormat(cfg *config.Config, opts Options) string {
	if _, set := opts.Env["CREDPROXY_LOG_FORMAT"]; !set && isTerminal(opts.Stderr) {
		return "console"
	}
	return cfg.LogFormat
}

// execConfig loads the configuration for exec: a forward proxy on an
// ephemeral loopback port and nothing else. exec is often run with a
// service's own environment (a cron job beside the running credproxy), so
// it writes no token sink (the service's file would be overwritten, then
// removed at exit) and binds none of the configured listeners (reverse
// LISTEN, admin, forward): those are the service's. The variables that
// named them are returned for one warning. It returns the log level too:
// unless set, only trouble is logged, so that the command's own output
// comes first.
func execConfig(env map[string]string) (cfg *config.Config, level string, ignored []string, err error) {
	cenv := make(map[string]string, len(env)+1)
	for k, v := range env {
		cenv[k] = v
	}
	cenv["CREDPROXY_FORWARD_ADDR"] = "127.0.0.1:0"
	cfg, err = config.Load(cenv)
	if err != nil {
		return nil, "", nil, err
	}
	for _, k := range []string{"CREDPROXY_ADMIN_ADDR", "CREDPROXY_FORWARD_ADDR"} {
		if _, set := env[k]; set {
			ignored = append(ignored, k)
		}
	}
	cfg.AdminAddr = ""
	for i, rc := range cfg.Routes {
		for _, k := range []string{"LISTEN", "TOKEN_SINK_FILE"} {
			if _, set := env[rc.Prefix+k]; set {
				ignored = append(ignored, rc.Prefix+k)
			}
		}
		cfg.Routes[i].Listen = ""
		cfg.Routes[i].TokenSinkFile = ""
	}
	level = cfg.LogLevel
	if _, set := env["CREDPROXY_LOG_LEVEL"]; !set {
		level = "warn"
	}
	return cfg, level, ignored, nil
}

// warnIgnored says, in one line, which variables of the environment exec
// leaves to the service they configure.
func warnIgnored(log *zap.Logger, ignored []string) {
	if len(ignored) > 0 {
		log.Warn("exec: binds no configured listener and writes no token sink; ignoring these variables (they belong to a running credproxy service)",
			zap.Strings("ignored", ignored))
	}
}

// execProxy is the server that exec runs for its command.
type execProxy struct {
	srv         *server.Server
	forwardAddr <-chan string
	served      chan error
	stop        context.CancelFunc
	stopped     bool
}

// startProxy builds the server of cfg, whose forward proxy serves exec's
// user alone (execGuard), and serves it. The server lives as long as the
// command, not as long as ctx: a signal is the command's to handle, and
// credproxy stops after it exits.
func startProxy(ctx context.Context, cfg *config.Config, log *zap.Logger) (*execProxy, *execGuard, error) {
	guard, err := newExecGuard()
	if err != nil {
		return nil, nil, err
	}
	forwardAddr := make(chan string, 1)
	srv, err := server.New(cfg, server.Options{
		Logger: log, CALifetime: CALifetime, Authorize: guard.authorize, AuthRealm: realm,
		OnListen: func(name, addr string) {
			if name == "forward" {
				forwardAddr <- addr
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	px := &execProxy{srv: srv, forwardAddr: forwardAddr, served: make(chan error, 1)}
	srvCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	px.stop = stop
	go func() { px.served <- srv.Serve(srvCtx) }()
	return px, guard, nil
}

// ready waits for the forward proxy's address and for every route's first
// token. A signal meanwhile ends the wait at once with its 128+signal
// *ExitError.
func (px *execProxy) ready(ctx context.Context, sigs *jobcontrol.Signals) (string, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var addr string
	got := make(chan error, 1)
	go func() {
		var err error
		addr, err = px.waitReady(wctx)
		got <- err
	}()
	select {
	case err := <-got:
		if err == nil {
			return addr, nil
		}
		if sig, ok := sigs.AfterCancel(ctx); ok {
			return "", beforeStart(sig)
		}
		return "", err
	case sig := <-sigs.Received():
		cancel()
		<-got
		return "", beforeStart(sig)
	}
}

// waitReady is ready without the signals.
func (px *execProxy) waitReady(ctx context.Context) (string, error) {
	var addr string
	select {
	case addr = <-px.forwardAddr:
	case err := <-px.served:
		px.stopped = true
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return addr, px.srv.WaitTokens(ctx)
}

// shutdown is exec's one shutdown path, whatever happened: cancel, drain,
// end sessions. It is safe to call twice.
func (px *execProxy) shutdown() error {
	if px.stopped {
		return nil
	}
	px.stopped = true
	px.stop()
	return <-px.served
}

// trustFiles are the CA files written for exec's command.
type trustFiles struct {
	// bundle is the system roots and credproxy's CA.
	bundle string
	// nodeExtra is credproxy's CA first, then the user's own
	// NODE_EXTRA_CA_CERTS.
	nodeExtra string
	// javaStore is a PKCS#12 trust store of credproxy's CA and the
	// bundle's roots (javaTrustStore).
	javaStore string
}

// writeTrustFiles writes the command's CA files into dir, readable by the
// user alone.
func writeTrustFiles(dir string, env map[string]string, ca *mitm.CA, log *zap.Logger) (trustFiles, error) {
	if err := os.Chmod(dir, 0o700); err != nil {
		return trustFiles{}, fmt.Errorf("exec: temp dir: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw})
	roots, rootsFrom := systemRoots(env)
	if rootsFrom == "" {
		log.Warn("exec: no system CA bundle found; the command trusts only credproxy's CA through SSL_CERT_FILE")
	}
	tf := trustFiles{bundle: filepath.Join(dir, "ca-bundle.pem"), nodeExtra: filepath.Join(dir, "node-extra-ca.pem"), javaStore: filepath.Join(dir, "java-truststore.p12")}
	if err := writePrivate(tf.bundle, joinPEM(roots, caPEM)); err != nil {
		return trustFiles{}, err
	}
	p12, err := javaTrustStore(ca.Certificate(), roots)
	if err != nil {
		return trustFiles{}, fmt.Errorf("exec: Java trust store: %w", err)
	}
	if err := writePrivate(tf.javaStore, p12); err != nil {
		return trustFiles{}, err
	}
	var userExtra []byte
	if f := env["NODE_EXTRA_CA_CERTS"]; f != "" {
		userExtra, _ = readCapped(f)
	}
	// credproxy's CA first: tools that read one certificate (keytool
	// -importcert, see the Java note in docs/operators/ways-in.md) take it.
	if err := writePrivate(tf.nodeExtra, joinPEM(caPEM, userExtra)); err != nil {
		return trustFiles{}, err
	}
	return tf, nil
}

// childEnv is the command's environment: credproxy's own without the
// secrets it holds by value, with the proxy and CA variables set for
// curl, Python, Go and Node (whose fetch and https honour HTTPS_PROXY
// only under NODE_USE_ENV_PROXY=1, from Node 22.21 and 24 on), and
// JAVA_TOOL_OPTIONS for Java, which reads none of them: the proxy at
// addr and the trust store, before the user's own options.
func childEnv(env map[string]string, proxyURL, addr string, trust trustFiles) map[string]string {
	cenv := make(map[string]string, len(env)+8)
	for k, v := range env {
		if !isSecretVar(k) {
			cenv[k] = v
		}
	}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		cenv[k] = proxyURL
	}
	for _, k := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} {
		cenv[k] = trust.bundle
	}
	cenv["NODE_EXTRA_CA_CERTS"] = trust.nodeExtra
	cenv["NODE_USE_ENV_PROXY"] = "1"
	cenv["JAVA_TOOL_OPTIONS"] = javaToolOptions(env["JAVA_TOOL_OPTIONS"], addr, trust.javaStore)
	return cenv
}

// runChild runs cmd with the signals credproxy receives relayed to it
// (jobcontrol.Signals.Relay), stops the proxy once it exits, and returns
// its exit code as *ExitError (128+signal when a signal ended it). A
// signal that came after the tokens but before the start ends exec as one
// before.
func runChild(cmd *exec.Cmd, px *execProxy, sigs *jobcontrol.Signals, log *zap.Logger) error {
	if sig, ok := sigs.Pending(); ok {
		return beforeStart(sig)
	}
	sigs.CatchStops()
	if err := cmd.Start(); err != nil {
		return &ExitError{Code: 126, Msg: fmt.Sprintf("exec: %v", err)}
	}
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(done) }()
	sigs.Relay(cmd.Process, done, log)
	sigs.Stop()
	if err := px.shutdown(); err != nil {
		log.Error("exec: the proxy failed while the command ran", zap.Error(err))
	}
	var ee *exec.ExitError
	switch {
	case werr == nil:
		return nil
	case errors.As(werr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Code: 128 + int(ws.Signal())}
		}
		return &ExitError{Code: ee.ExitCode()}
	}
	return fmt.Errorf("exec: %w", werr)
}

// beforeStart is exec's answer to a signal before its command started: it
// ends with 128+signal.
func beforeStart(sig os.Signal) error {
	n := sig.(syscall.Signal)
	return &ExitError{Code: 128 + int(n), Msg: "exec: " + unix.SignalName(n) + " while waiting for the first tokens; the command was not started"}
}

// systemRoots returns the roots the command would trust without us: the
// user's SSL_CERT_FILE if set, else the system bundle; and where they came
// from ("" when none was found).
func systemRoots(env map[string]string) ([]byte, string) {
	files := systemRootFiles
	if f := env["SSL_CERT_FILE"]; f != "" {
		files = []string{f}
	}
	for _, f := range files {
		if b, err := readCapped(f); err == nil && len(b) > 0 {
			return b, f
		}
	}
	return nil, ""
}

func readCapped(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxBundle))
}

func joinPEM(a, b []byte) []byte {
	out := append([]byte{}, a...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, b...)
}

func writePrivate(name string, data []byte) error {
	if err := os.WriteFile(name, data, 0o600); err != nil {
		return fmt.Errorf("exec: write %s: %w", name, err)
	}
	return nil
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// warnNoProxy warns when the user's NO_PROXY would send a route's host
// around the proxy: those calls would carry no credential. exec adds
// nothing to NO_PROXY and takes nothing from it.
func warnNoProxy(log *zap.Logger, env map[string]string, routes []config.Route) {
	var entries []string
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		for _, e := range strings.Split(env[k], ",") {
			if e = strings.ToLower(strings.TrimSpace(e)); e != "" {
				entries = append(entries, e)
			}
		}
	}
	for _, rc := range routes {
		var hosts []string
		if rc.Upstream != nil {
			hosts = append(hosts, rc.Upstream.Hostname())
		}
		hosts = append(hosts, rc.Hosts...)
		for _, h := range hosts {
			h = strings.ToLower(h)
			for _, e := range entries {
				e = strings.TrimPrefix(e, "*")
				if e == "" || e == h || e == "."+h || strings.HasSuffix(h, "."+strings.TrimPrefix(e, ".")) {
					log.Warn("exec: NO_PROXY sends a route's host around credproxy; those calls carry no credential",
						zap.String("route", rc.Name), zap.String("host", h))
				}
			}
		}
	}
}
