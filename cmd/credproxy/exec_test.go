package main

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// execEnv is the environment of an exec test: one CSP route to the echo
// API, and a NO_PROXY of the user's that exec must keep. The first token
// may take a while on a loaded machine (the binary is race-built): the
// tests wait up to 30 s for it, not TOKEN_WAIT's 5 s.
func execEnv(cspURL, apiToken, echoURL, certFile string) map[string]string {
	return cspEnv(cspURL, apiToken, echoURL, certFile, "NO_PROXY", "localhost,build.example.internal", "CREDPROXY_TOKEN_WAIT", "30s")
}

// goClient builds a tiny Go program that GETs its argument and prints the
// body. It trusts the system pool (which Go reads from SSL_CERT_FILE) and
// proxies through HTTPS_PROXY; it names the proxy itself because Go's
// ProxyFromEnvironment never proxies 127.0.0.1, where the fake API is.
func goClient(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := `package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

func main() {
	pu, err := url.Parse(os.Getenv("HTTPS_PROXY"))
	if err != nil || pu.Host == "" {
		fmt.Fprintln(os.Stderr, "no HTTPS_PROXY")
		os.Exit(3)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := c.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "goclient")
	build := exec.Command("go", "build", "-o", bin, "main.go")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Go client: %v %s", err, out)
	}
	return bin
}

// TestExecRealClients runs curl, Python requests and a Go program under
// `credproxy exec`, with no proxy or CA configured by hand: each reaches the
// TLS fake API with a valid token. The command's environment holds the
// proxy and CA variables, the user's NO_PROXY unchanged, and no secret;
// the CA bundle is private while the command runs and gone afterwards.
func TestExecRealClients(t *testing.T) {
	const apiToken = "execE2e-51c3-ab77-feed"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := execEnv(cspURL, apiToken, echoURL, certFile)
	var logs strings.Builder

	checkEcho := func(who string, out []byte) {
		t.Helper()
		var e struct {
			Authorized bool   `json:"authorized"`
			Path       string `json:"path"`
		}
		if err := json.Unmarshal(out, &e); err != nil || !e.Authorized {
			t.Errorf("%s got %s (%v)", who, out, err)
			return
		}
		if tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "); !csp.Valid(tok) {
			t.Errorf("%s: the API saw no valid token", who)
		}
	}
	runExec := func(who string, args ...string) []byte {
		t.Helper()
		code, out, errOut := runBinary(t, withPath(env), append([]string{"exec", "--"}, args...)...)
		logs.WriteString(out + errOut)
		if code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", who, code, out, errOut)
		}
		return []byte(out)
	}

	checkEcho("curl", runExec("curl", "curl", "-sS", "-f", echoURL+"/api/v2/curl"))
	checkEcho("python requests", runExec("python", python(t), "-c", `import requests, sys
r = requests.get(sys.argv[1], timeout=10)
r.raise_for_status()
sys.stdout.write(r.text)`, echoURL+"/api/v2/python"))
	checkEcho("Go net/http", runExec("go", goClient(t), echoURL+"/api/v2/go"))

	// The command's environment and the CA files, seen from inside.
	out := runExec("env", "sh", "-c", `stat -c '%a' "$SSL_CERT_FILE" "$(dirname "$SSL_CERT_FILE")" "$NODE_EXTRA_CA_CERTS"; echo ---; env`)
	head, envText, _ := strings.Cut(string(out), "---\n")
	if got := strings.Fields(head); strings.Join(got, " ") != "600 700 600" {
		t.Errorf("modes of bundle, its dir, the Node file: %v, want 600 700 600", got)
	}
	child := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(envText), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			child[k] = v
		}
	}
	proxyURL := child["HTTPS_PROXY"]
	if pu, err := url.Parse(proxyURL); err != nil || pu.Scheme != "http" || pu.Hostname() != "127.0.0.1" || pu.User.Username() != "credproxy" {
		t.Errorf("HTTPS_PROXY = %q, want http://credproxy:KEY@127.0.0.1:PORT", proxyURL)
	} else if key, _ := pu.User.Password(); len(key) < 40 {
		t.Errorf("HTTPS_PROXY's key is %d characters, want a long random one", len(key))
	}
	for _, k := range []string{"HTTP_PROXY", "https_proxy", "http_proxy"} {
		if child[k] != proxyURL {
			t.Errorf("%s = %q, want %q", k, child[k], proxyURL)
		}
	}
	bundle := child["SSL_CERT_FILE"]
	for _, k := range []string{"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} {
		if child[k] != bundle {
			t.Errorf("%s = %q, want the bundle %q", k, child[k], bundle)
		}
	}
	if child["NO_PROXY"] != env["NO_PROXY"] {
		t.Errorf("NO_PROXY = %q, want the user's %q unchanged", child["NO_PROXY"], env["NO_PROXY"])
	}
	if _, ok := child["CREDPROXY_CSP_API_TOKEN"]; ok {
		t.Error("CREDPROXY_CSP_API_TOKEN reached the command")
	}
	if child["CREDPROXY_UPSTREAM"] != echoURL {
		t.Errorf("CREDPROXY_UPSTREAM = %q: non-secret configuration should stay", child["CREDPROXY_UPSTREAM"])
	}
	for k, v := range child {
		if strings.Contains(v, apiToken) || csp.Valid(v) || csp.Valid(strings.TrimPrefix(v, "Bearer ")) {
			t.Errorf("the command's %s holds a secret", k)
		}
	}
	for _, f := range []string{bundle, child["NODE_EXTRA_CA_CERTS"], filepath.Dir(bundle)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after exec: %v", f, err)
		}
	}
	logtest.AssertNoSecrets(t, "exec output", logs.String(), apiToken, strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "))
}

func withPath(env map[string]string) map[string]string {
	out := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME")}
	for _, k := range []string{"GOCACHE", "GOPATH", "GOROOT", "TMPDIR"} {
		if v := os.Getenv(k); v != "" {
			out[k] = v
		}
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// TestExecExitCode: credproxy exits with the command's exit code, and
// reports a command it cannot find as 127.
func TestExecExitCode(t *testing.T) {
	const apiToken = "execCode-0b1e-77aa"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	tcs := []struct {
		desc string
		args []string
		want int
	}{
		{desc: "success", args: []string{"exec", "--", "true"}, want: 0},
		{desc: "code 7", args: []string{"exec", "--", "sh", "-c", "exit 7"}, want: 7},
		{desc: "no --", args: []string{"exec", "sh", "-c", "exit 3"}, want: 3},
		{desc: "killed by a signal", args: []string{"exec", "--", "sh", "-c", "kill -USR1 $$"}, want: 128 + int(syscall.SIGUSR1)},
		{desc: "not found", args: []string{"exec", "--", "credproxy-no-such-command"}, want: 127},
		{desc: "no command", args: []string{"exec", "--"}, want: 2},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			code, out, errOut := runBinary(t, env, tc.args...)
			if code != tc.want {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.want, out, errOut)
			}
		})
	}
}

// TestExecForwardsSignals: SIGTERM to credproxy reaches the command, which
// may handle it (credproxy exits with its code) or die of it (128+15).
func TestExecForwardsSignals(t *testing.T) {
	const apiToken = "execSig-3f2d-90cc"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	tcs := []struct {
		desc   string
		script string
		want   int
		output string
	}{
		{desc: "handled", script: `trap 'echo got-TERM; exit 42' TERM; echo ready; i=0; while [ $i -lt 500 ]; do sleep 0.05; i=$((i+1)); done`, want: 42, output: "got-TERM"},
		{desc: "default action", script: `echo ready; exec sleep 25`, want: 128 + int(syscall.SIGTERM)},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			p := start(t, execEnv(cspURL, apiToken, echoURL, certFile), "exec", "--", "sh", "-c", tc.script)
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(p.stdout.String(), "ready") {
				if time.Now().After(deadline) {
					t.Fatalf("the command never started; stderr: %s", p.stderr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// sh may print "ready" before exec'ing sleep; a TERM in
			// between still ends it with the default action.
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 20*time.Second); code != tc.want {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.want, p.stderr)
			}
			if !strings.Contains(p.stdout.String(), tc.output) {
				t.Errorf("stdout %q lacks %q", p.stdout, tc.output)
			}
		})
	}
}

// TestExecTokenUnavailable: with no token to be had, exec says why, exits
// 1 and never starts the command.
func TestExecTokenUnavailable(t *testing.T) {
	const apiToken = "execGood-a1b2-c3d4"
	const wrongToken = "execWrong-9e8d-7c6b"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	marker := filepath.Join(t.TempDir(), "started")
	env := withPath(execEnv(cspURL, wrongToken, echoURL, certFile))
	env["CREDPROXY_TOKEN_WAIT"] = "2s"
	code, out, errOut := runBinary(t, env, "exec", "--", "sh", "-c", "touch "+marker)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, "route default: no token within 2s") || !strings.Contains(errOut, "not starting sh") {
		t.Errorf("stderr does not say why: %s", errOut)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command was started: %v", err)
	}
	logtest.AssertNoSecrets(t, "exec output", out+errOut, wrongToken)
}

// countingScript counts the SIGINT, SIGQUIT and SIGTERM it receives and
// prints the counts when the stop file ($1) appears. It waits with the
// wait builtin, which a trapped signal interrupts at once, so that each
// signal runs its trap: two signals a millisecond apart count two.
// (Commands run with & by a shell without job control ignore SIGINT and
// SIGQUIT, so the terminal's signals reach the script's sleeps to no
// effect.)
const countingScript = `ints=0 quits=0 terms=0
trap 'ints=$((ints+1)); echo "got INT $ints"' INT
trap 'quits=$((quits+1)); echo "got QUIT $quits"' QUIT
trap 'terms=$((terms+1)); echo "got TERM $terms"' TERM
echo "ready pid=$$"
while [ ! -e "$1" ]; do sleep 0.05 & wait $!; done
echo "counted INT=$ints QUIT=$quits TERM=$terms"
`

// TestExecSignalBeforeCommand: a signal while exec waits for the first
// token (the identity service is slow to answer) ends credproxy at once
// with 128+signal, says so, and never starts the command.
func TestExecSignalBeforeCommand(t *testing.T) {
	const apiToken = "execEarly-6b0f-12cd"
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
			csp.SetFault(demo.Fault{Delay: time.Minute})
			marker := filepath.Join(t.TempDir(), "started")
			p := start(t, execEnv(cspURL, apiToken, echoURL, certFile), "exec", "--", "sh", "-c", "touch "+marker)
			deadline := time.Now().Add(30 * time.Second)
			for len(csp.Requests()) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no exchange began; stderr: %s", p.stderr)
				}
				p.alive(t, "start")
				time.Sleep(20 * time.Millisecond)
			}
			sent := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 10*time.Second); code != 128+int(sig) {
				t.Errorf("exit %d after %v, want %d; stderr: %s", code, sig, 128+int(sig), p.stderr)
			}
			if took := time.Since(sent); took > 5*time.Second {
				t.Errorf("exited %v after the signal, want at once", took)
			}
			if !strings.Contains(p.stderr.String(), "while waiting for the first tokens; the command was not started") {
				t.Errorf("stderr does not say why: %s", p.stderr)
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the command was started: %v", err)
			}
		})
	}
}
