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
)

// curlUnix runs curl through the unix socket sock and returns the body
// and the status code it printed last.
func curlUnix(t *testing.T, sock, url string) (body, status string) {
	t.Helper()
	out, err := exec.Command("curl", "-s", "-m", "20", "--unix-socket", sock, "-w", "\n%{http_code}", url).Output()
	if err != nil {
		t.Fatalf("curl --unix-socket %s %s: %v", sock, url, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	return s[:i], s[i+1:]
}

// TestUnixSocketListeners: LISTEN and CREDPROXY_ADMIN_ADDR as unix:/path
// sockets, with curl --unix-socket: the route injects the token, /readyz
// answers 200, the route's socket has its LISTEN_MODE (0600) and the
// admin socket listen.DefaultMode (0660), both are logged as unix:/path,
// and they are removed at exit.
func TestUnixSocketListeners(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	const apiToken = "unixS0ck-api-t0ken-3c4d"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	dir := shortTempDir(t)
	route, admin := filepath.Join(dir, "route.sock"), filepath.Join(dir, "admin.sock")
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile,
		"CREDPROXY_LISTEN", "unix:"+route, "CREDPROXY_LISTEN_MODE", "0600",
		"CREDPROXY_ADMIN_ADDR", "unix:"+admin,
	))
	addrs := p.listeners(t, 2)
	if addrs["route default"] != "unix:"+route || addrs["admin"] != "unix:"+admin {
		t.Errorf("listeners logged as %v", addrs)
	}
	for sock, want := range map[string]os.FileMode{route: 0o600, admin: 0o660} {
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want a socket with %#o", sock, fi.Mode(), want)
		}
	}
	p.eventually(t, "ready", 15*time.Second, func() bool {
		_, status := curlUnix(t, admin, "http://localhost/readyz")
		return status == "200"
	})
	body, status := curlUnix(t, route, "http://localhost/api/v2/source")
	if status != "200" || !strings.Contains(body, `"authorized":true`) {
		t.Errorf("through the route's socket: %s %s", status, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	for _, sock := range []string{route, admin} {
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("%s left behind at exit (%v)", sock, err)
		}
	}
	logtest.AssertNoSecrets(t, "logs", p.stderr.String(), apiToken)
}
