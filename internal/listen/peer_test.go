package listen

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// nobody is the uid and gid of Debian's nobody and nogroup.
const nobody = 65534

// curl runs curl against the socket at path, as cred's user when cred is
// set, and returns its output and pid.
func curl(t *testing.T, path string, cred *syscall.Credential) (out string, pid int, err error) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--unix-socket", path, "http://credproxy/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		return stderr.String(), pid, err
	}
	return stdout.String(), pid, nil
}

// TestUnixPeerIdentity: a handler behind ConnContext sees the kernel's
// word on each caller: Go's client in this process, curl as this user,
// and curl run as nobody.
func TestUnixPeerIdentity(t *testing.T) {
	dir := shortTempDir(t)
	// nobody must reach the socket: through the directory, and with write
	// permission on the socket itself.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "p.sock")
	ln := mustListen(t, UnixPrefix+path, Options{Mode: 0o666})
	serveHTTP(t, ln)

	want := fmt.Sprintf("uid=%d gid=%d pid=%d known=true", os.Getuid(), os.Getgid(), os.Getpid())
	if got := get(t, unixClient(path), "http://credproxy/"); got != want {
		t.Errorf("Go client: %q, want %q", got, want)
	}

	out, pid, err := curl(t, path, nil)
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	if want := fmt.Sprintf("uid=%d gid=%d pid=%d known=true", os.Getuid(), os.Getgid(), pid); out != want {
		t.Errorf("curl: %q, want %q", out, want)
	}

	if os.Getuid() != 0 {
		t.Skip("running a client as nobody needs root")
	}
	out, pid, err = curl(t, path, &syscall.Credential{Uid: nobody, Gid: nobody})
	if err != nil {
		t.Fatalf("curl as nobody: %v: %s", err, out)
	}
	if want := fmt.Sprintf("uid=%d gid=%d pid=%d known=true", nobody, nobody, pid); out != want {
		t.Errorf("curl as nobody: %q, want %q", out, want)
	}
}

// TestUnixModeKeepsOthersOut: with the default mode 0660, a caller who is
// neither the owner nor in the group cannot connect at all.
func TestUnixModeKeepsOthersOut(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running a client as nobody needs root")
	}
	dir := shortTempDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "k.sock")
	serveHTTP(t, mustListen(t, UnixPrefix+path, Options{}))
	out, _, err := curl(t, path, &syscall.Credential{Uid: nobody, Gid: nobody})
	if err == nil {
		t.Fatalf("nobody reached a 0660 socket owned by root: %q", out)
	}
	if !bytes.Contains([]byte(out), []byte("Permission denied")) && !bytes.Contains([]byte(out), []byte("Couldn't connect")) {
		t.Errorf("curl as nobody failed otherwise than by permission: %v: %s", err, out)
	}
}

// TestPeerThroughTLS: behind crypto/tls, ConnContext gets a *tls.Conn and
// still finds the caller through NetConn.
func TestPeerThroughTLS(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "t.sock")
	ln, err := Listen(UnixPrefix+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sawTLS bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PeerFrom(r.Context())
		fmt.Fprintf(w, "uid=%d pid=%d known=%v ok=%v tls=%v", p.UID, p.PID, p.Known, ok, sawTLS)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		_, sawTLS = c.(*tls.Conn)
		return ConnContext(ctx, c)
	}
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	want := fmt.Sprintf("uid=%d pid=%d known=true ok=true tls=true", os.Getuid(), os.Getpid())
	if got := get(t, client, "https://example.com/"); got != want {
		t.Errorf("over TLS: %q, want %q", got, want)
	}
}

// TestConnUnwraps: a *Conn gives back the accepted connection and its
// CloseWrite, which half-closes it as the *net.UnixConn's would.
func TestConnUnwraps(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "u.sock")
	ln := mustListen(t, UnixPrefix+path, Options{})
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, ok := c.(*Conn)
	if !ok {
		t.Fatalf("Accept returned a %T, want *Conn", c)
	}
	if _, ok := pc.NetConn().(*net.UnixConn); !ok {
		t.Errorf("NetConn is a %T, want *net.UnixConn", pc.NetConn())
	}
	if !pc.Peer.Known || pc.Peer.PID != os.Getpid() {
		t.Errorf("Peer %+v, want this process", pc.Peer)
	}
	if _, ok := c.(interface {
		CloseWrite() error
		CloseRead() error
	}); !ok {
		t.Error("a *Conn cannot be half-closed as a tunnel does")
	}
	if err := pc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("after CloseWrite the client read %d, %v; want EOF", n, err)
	}
}
