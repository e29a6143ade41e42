package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/testwait"
)

const (
	gateAPIToken = "gateE2e-9b1c-77aa-d00d"
	gateKey      = "gk-Zq81xVn4-TT92mm3p"
	gateKey2     = "gk-Wp40aaQ7-LL15nn8r"
)

// curlStatus runs curl with args and returns the status it printed:
// the answer's, or the CONNECT's when the proxy refused the tunnel.
func curlStatus(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-s", "-o", "/dev/null", "-m", "20", "-w", "%{http_code} %{http_connect}"}, args...)...).Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("curl %v: %v", args, err)
	}
	code, connect, _ := strings.Cut(string(out), " ")
	if code == "000" {
		return connect
	}
	return code
}

// TestForwardKeysRealClients: with CREDPROXY_FORWARD_KEYS_FILE, curl and
// Python requests with HTTPS_PROXY=http://name:key@host:port reach the
// API with the real credential; without the key, or with a wrong one,
// 407 and nothing is proxied; the key is rotated without a restart; the
// audit log records via forward with the key's name and holds no key.
func TestForwardKeysRealClients(t *testing.T) {
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: gateAPIToken, TTL: time.Hour})
	dir := t.TempDir()
	keys, audit := filepath.Join(dir, "fwdkeys"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(keys, []byte("ci:"+gateKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, cspEnv(cspURL, gateAPIToken, echoURL, certFile, append(onLoopback,
		"CREDPROXY_FORWARD_KEYS_FILE", keys, "CREDPROXY_AUDIT_LOG", audit)...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, []byte(get(t, "http://"+addrs["admin"]+"/ca.pem")), 0o644); err != nil {
		t.Fatal(err)
	}
	withKey := func(k string) string { return "http://ci:" + k + "@" + addrs["forward"] }

	if st := curlStatus(t, "-x", "http://"+addrs["forward"], "--cacert", caFile, echoURL+"/api/v2/nokey"); st != "407" {
		t.Errorf("curl without a key: %s", st)
	}
	if st := curlStatus(t, "-x", withKey("wrong-key-000000000000"), "--cacert", caFile, echoURL+"/api/v2/wrong"); st != "407" {
		t.Errorf("curl with a wrong key: %s", st)
	}
	if n := echo.Requests(); n != 0 {
		t.Errorf("the API saw %d requests from refused callers", n)
	}
	if st := curlStatus(t, "-x", withKey(gateKey), "--cacert", caFile, echoURL+"/api/v2/curl"); st != "200" {
		t.Errorf("curl with the key: %s", st)
	}
	if tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "); !csp.Valid(tok) {
		t.Error("the API saw no valid token")
	}
	py := exec.Command(python(t), "-c", "import requests,sys; print(requests.get(sys.argv[1], timeout=10).status_code)", echoURL+"/api/v2/python")
	py.Env = []string{"HTTPS_PROXY=" + withKey(gateKey), "REQUESTS_CA_BUNDLE=" + caFile, "PATH=" + os.Getenv("PATH")}
	if out, err := py.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "200" {
		t.Errorf("python requests with the key: %v %s", err, out)
	}

	// Rotation: the old key is refused, the new one taken, no restart.
	if err := os.WriteFile(keys, []byte("ci:"+gateKey2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 5*time.Second, func() (bool, string) {
		st := curlStatus(t, "-x", withKey(gateKey), "--cacert", caFile, echoURL+"/api/v2/old")
		return st == "407", "old key answered " + st
	})
	if st := curlStatus(t, "-x", withKey(gateKey2), "--cacert", caFile, echoURL+"/api/v2/new"); st != "200" {
		t.Errorf("curl with the rotated key: %s", st)
	}

	var lines []map[string]any
	testwait.Eventually(t, 5*time.Second, func() (bool, string) {
		lines = auditLines(t, audit)
		return len(lines) >= 6 && lines[len(lines)-1]["path"] == "/api/v2/new", "the last request not yet recorded"
	})
	allowed := 0
	for _, l := range lines {
		if l["via"] != "forward" {
			t.Errorf("audit line not via forward: %v", l)
		}
		if l["decision"] == "allowed" {
			if l["path"] != "/api/v2/old" { // the old key until the file is checked again
				allowed++
			}
			if l["key"] != "ci" || l["route"] != "default" || l["token"] == nil {
				t.Errorf("allowed line: %v", l)
			}
		}
	}
	if allowed != 3 {
		t.Errorf("%d allowed lines, want 3: %v", allowed, lines)
	}
	b, _ := os.ReadFile(audit)
	logtest.AssertNoSecrets(t, "audit log and logs", string(b)+p.stderr.String(), gateAPIToken, gateKey, gateKey2,
		strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "))
}

// TestUnixSocketPeerAllow: a route on a unix socket (mode 0666, in a
// directory anyone may enter) with ALLOW_UIDS=0: curl --unix-socket as
// root is served, as uid 65534 refused with 403 caller_not_allowed, and
// nothing of it reaches the API.
func TestUnixSocketPeerAllow(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run curl as another user")
	}
	_, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: gateAPIToken, TTL: time.Hour})
	dir := shortTempDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "route.sock")
	p := start(t, cspEnv(cspURL, gateAPIToken, echoURL, certFile,
		"CREDPROXY_LISTEN", "unix:"+sock, "CREDPROXY_LISTEN_MODE", "0666", "CREDPROXY_ALLOW_UIDS", "0",
		"CREDPROXY_ADMIN_ADDR", "127.0.0.1:0"))
	addrs := p.listeners(t, 2)
	waitReady(t, addrs["admin"])
	body, status := curlUnix(t, sock, "http://localhost/api/v2/root")
	if status != "200" || !strings.Contains(body, `"authorized":true`) {
		t.Errorf("root: %s %s", status, body)
	}
	before := echo.Requests()
	cmd := exec.Command("curl", "-s", "-m", "20", "--unix-socket", sock, "-w", "\n%{http_code}", "http://localhost/api/v2/nobody")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl as 65534: %v %s", err, out)
	}
	if !strings.HasSuffix(string(out), "\n403") || !strings.Contains(string(out), "caller_not_allowed") {
		t.Errorf("uid 65534: %s", out)
	}
	if echo.Requests() != before {
		t.Error("a refused caller's request reached the API")
	}
}
