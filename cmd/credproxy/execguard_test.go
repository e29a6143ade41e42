package main

import (
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

// execUnderTest runs exec with a command that writes its HTTPS_PROXY to
// a file and waits for a stop file; it returns the proxy URL and a stop
// function that ends the command and waits for exec's exit code.
func execUnderTest(t *testing.T, env map[string]string) (*proc, *url.URL, func() int) {
	t.Helper()
	dir := t.TempDir()
	urlFile, stop := filepath.Join(dir, "proxy"), filepath.Join(dir, "stop")
	script := `printf %s "$HTTPS_PROXY" > "$1.tmp" && mv "$1.tmp" "$1"; while [ ! -e "$2" ]; do sleep 0.05; done`
	p := start(t, env, "exec", "--", "sh", "-c", script, "sh", urlFile, stop)
	// Before start's cleanup kills exec: the command would live on,
	// holding exec's output pipes, and the test would wait for ever.
	t.Cleanup(func() { _ = os.WriteFile(stop, nil, 0o600) })
	var raw []byte
	p.eventually(t, "the command's HTTPS_PROXY", 30*time.Second, func() bool {
		var err error
		raw, err = os.ReadFile(urlFile)
		return err == nil
	})
	pu, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return p, pu, func() int {
		if err := os.WriteFile(stop, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return p.wait(t, 20*time.Second)
	}
}

// TestExecRefusesOtherUsers: another local user (uid 65534, as a real
// process) that reaches exec's proxy without the key gets 407 with the
// Basic challenge, for a plain http:// request to the route host (which
// would be upgraded to https with the credential) and for a CONNECT, and
// the API sees nothing. With the key (as read from the command's
// environment) the same user is served: the key is what a client that
// sends proxy credentials uses. Needs root to run a process as 65534.
func TestExecRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as uid 65534 (CI runs as root)")
	}
	const apiToken = "execGuard-2b7e-91fd"
	_, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	p, pu, stop := execUnderTest(t, execEnv(cspURL, apiToken, echoURL, certFile))
	key, _ := pu.User.Password()
	bare := "http://" + pu.Host
	plain := "http://" + strings.TrimPrefix(echoURL, "https://") + "/api/v2/plain"
	secure := echoURL + "/api/v2/tunnel"

	nobody := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("curl", append([]string{"-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code} %{http_connect}"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.Output()
		return string(out)
	}
	before := echo.Requests()
	if got := nobody("-x", bare, plain); got != "407 000" {
		t.Errorf("uid 65534, plain http without the key: %q, want 407", got)
	}
	if got := nobody("-k", "-x", bare, secure); got != "000 407" {
		t.Errorf("uid 65534, CONNECT without the key: %q, want 407", got)
	}
	if n := echo.Requests() - before; n != 0 {
		t.Fatalf("the API saw %d requests from a refused user", n)
	}
	hdr := exec.Command("curl", "-s", "-m", "20", "-o", "/dev/null", "-D", "-", "-x", bare, plain)
	hdr.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, _ := hdr.Output(); !strings.Contains(string(out), `Proxy-Authenticate: Basic realm="credproxy exec"`) {
		t.Errorf("the 407 has no Basic challenge: %s", out)
	}
	if got := nobody("-k", "-x", pu.String(), secure); got != "200 200" {
		t.Errorf("uid 65534 with the key, CONNECT: %q, want 200", got)
	}
	if got := nobody("-x", pu.String(), plain); got != "200 000" {
		t.Errorf("uid 65534 with the key, plain http: %q, want 200", got)
	}
	if code := stop(); code != 0 {
		t.Errorf("exec exited %d", code)
	}
	logtest.AssertNoSecrets(t, "exec's stderr", p.stderr.String(), key, apiToken)
	if !strings.Contains(p.stderr.String(), "uid 65534") {
		t.Errorf("the refusal was not logged with the caller's uid: %s", p.stderr)
	}
}
