package listen

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/credproxy/credproxy/internal/testwait"
)

// socketFile is a dup of ln's socket, named as systemd would pass it.
// ln is closed, without removing a unix socket's file (systemd's).
func socketFile(t *testing.T, ln net.Listener, name string) *os.File {
	t.Helper()
	var (
		f   *os.File
		err error
	)
	switch l := ln.(type) {
	case *net.TCPListener:
		f, err = l.File()
	case *net.UnixListener:
		l.SetUnlinkOnClose(false)
		f, err = l.File()
	default:
		t.Fatalf("socketFile of a %T", ln)
	}
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), name)
}

func tcpListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestSocketsMatch: each passed socket goes to the listener bound to its
// address (through a symlinked directory too), else to the one of its
// name; the rest are named by CloseUnclaimed; a taken unix socket's file
// is systemd's and stays at Close.
func TestSocketsMatch(t *testing.T) {
	dir := shortTempDir(t)
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	sockPath := filepath.Join(real, "a.sock")
	unixLn, err := net.Listen("unix", sockPath)
	if err != nil {
		t.Fatal(err)
	}
	byAddr, byName, stray := tcpListener(t), tcpListener(t), tcpListener(t)
	byAddrAt, byNameAt, strayAt := byAddr.Addr().String(), byName.Addr().String(), stray.Addr().String()
	socks, err := NewSockets([]*os.File{
		socketFile(t, unixLn, "LISTEN_FD_3"),
		socketFile(t, byAddr, "reverse-default"),
		socketFile(t, byName, "admin"),
		socketFile(t, stray, "stray"),
	})
	if err != nil {
		t.Fatal(err)
	}

	// "admin" is bound elsewhere than its configured address: it goes
	// by name, and only after the address match took "reverse-default"
	// from a listener that names itself "reverse-default" too.
	viaLink := UnixPrefix + filepath.Join(dir, "link", "a.sock")
	u := mustListen(t, viaLink, Options{Name: "forward", Sockets: socks, Mode: 0o600})
	r := mustListen(t, byAddrAt, Options{Name: "admin", Sockets: socks})
	a := mustListen(t, "localhost:1", Options{Name: "admin", Sockets: socks})
	fresh := mustListen(t, "127.0.0.1:0", Options{Name: "reverse-default", Sockets: socks})
	for _, tc := range []struct {
		desc      string
		got, want string
	}{
		{"unix, through the symlink", u.Addr().String(), sockPath},
		{"by address", r.Addr().String(), byAddrAt},
		{"by name", a.Addr().String(), byNameAt},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: listener at %s, want the passed socket at %s", tc.desc, tc.got, tc.want)
		}
	}
	if fresh.Addr().String() == byAddrAt || fresh.Addr().String() == strayAt {
		t.Errorf("a listener with nothing left for it took a passed socket: %s", fresh.Addr())
	}

	err = socks.CloseUnclaimed()
	if want := "stray (" + strayAt + ")"; err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "admin") {
		t.Errorf("CloseUnclaimed: %v; want an error naming %s alone", err, want)
	}
	if err := socks.CloseUnclaimed(); err != nil {
		t.Errorf("a second CloseUnclaimed: %v", err)
	}
	if c, err := net.DialTimeout("tcp", strayAt, time.Second); err == nil {
		c.Close()
		t.Errorf("the unclaimed socket still answers")
	}

	// The passed unix socket learns its callers, and its file stays.
	c, err := net.Dial("unix", sockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ac, err := u.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if pc, ok := ac.(*Conn); !ok || pc.Peer.PID != os.Getpid() {
		t.Errorf("accepted %T %+v, want a *Conn from this process", ac, ac)
	}
	ac.Close()
	u.Close()
	if _, err := os.Lstat(sockPath); err != nil {
		t.Errorf("closing a passed socket removed systemd's file: %v", err)
	}
}

// TestNilSockets: without systemd's sockets every listener binds.
func TestNilSockets(t *testing.T) {
	var s *Sockets
	ln := mustListen(t, "127.0.0.1:0", Options{Name: "admin", Sockets: s})
	if ln == nil {
		t.Fatal("no listener")
	}
	if err := s.CloseUnclaimed(); err != nil {
		t.Error(err)
	}
}

// TestSocketsRefuseNonListening: a datagram socket, or a connected one
// (Accept=yes), cannot be served; the error names it, and the good
// sockets passed with it are closed.
func TestSocketsRefuseNonListening(t *testing.T) {
	dir := shortTempDir(t)
	dgram, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "d.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	df, err := dgram.File()
	if err != nil {
		t.Fatal(err)
	}
	dgram.Close()
	dfd, err := unix.Dup(int(df.Fd()))
	df.Close()
	if err != nil {
		t.Fatal(err)
	}
	good := tcpListener(t)
	goodAt := good.Addr().String()
	_, err = NewSockets([]*os.File{os.NewFile(uintptr(dfd), "datagram"), socketFile(t, good, "good")})
	if err == nil || !strings.Contains(err.Error(), "systemd socket datagram") || !strings.Contains(err.Error(), "ListenStream=") {
		t.Errorf("NewSockets with a datagram socket: %v", err)
	}
	if c, err := net.DialTimeout("tcp", goodAt, time.Second); err == nil {
		c.Close()
		t.Errorf("the good socket passed alongside was not closed")
	}
}

// activatedChildEnv marks the test binary run as the child of
// TestSystemdActivation.
const activatedChildEnv = "CREDPROXY_LISTEN_ACTIVATED_CHILD"

// TestSystemdActivation passes a unix and a TCP socket to a child process
// as systemd does (fds 3 and 4, LISTEN_FDS=2, LISTEN_PID the child's own,
// LISTEN_FDNAMES), and closes its own copies: the child takes them with
// SystemdSockets and Listen, and this process's requests reach it, the
// unix one with this process as the caller.
func TestSystemdActivation(t *testing.T) {
	if os.Getenv(activatedChildEnv) != "" {
		t.Skip("the child")
	}
	path := filepath.Join(shortTempDir(t), "act.sock")
	unixLn, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	tcpLn := tcpListener(t)
	tcpAt := tcpLn.Addr().String()
	files := []*os.File{socketFile(t, unixLn, "x"), socketFile(t, tcpLn, "y")}
	// LISTEN_PID must be the child's pid, known only once it runs: sh sets
	// it to its own and execs the test binary in its place.
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`}, childArgs()...)...)
	cmd.Env = append(os.Environ(), activatedChildEnv+"="+path, "LISTEN_FDS=2", "LISTEN_FDNAMES=reverse-default:admin")
	cmd.ExtraFiles = files
	runActivatedChild(t, cmd, path, tcpAt, func() {
		for _, f := range files {
			f.Close()
		}
	})
}

// TestSystemdSocketActivate is TestSystemdActivation with systemd's own
// systemd-socket-activate making the sockets and the environment: it
// binds them, waits for the first connection, then execs the child.
func TestSystemdSocketActivate(t *testing.T) {
	if os.Getenv(activatedChildEnv) != "" {
		t.Skip("the child")
	}
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate is not installed (Debian's systemd package)")
	}
	path := filepath.Join(shortTempDir(t), "act.sock")
	free := tcpListener(t) // a free port, for systemd-socket-activate to bind
	tcpAt := free.Addr().String()
	free.Close()
	args := append([]string{"-l", path, "-l", tcpAt, "--fdname=reverse-default:admin", "-E", activatedChildEnv + "=" + path}, childArgs()...)
	// It binds once it runs: wait for its socket file.
	runActivatedChild(t, exec.Command(activate, args...), path, tcpAt, func() {
		testwait.Eventually(t, 10*time.Second, func() (bool, string) {
			_, err := os.Lstat(path)
			return err == nil, fmt.Sprintf("the socket file: %v", err)
		})
	})
}

// childArgs runs this test binary as TestActivatedChild.
func childArgs() []string {
	return []string{os.Args[0], "-test.run=^TestActivatedChild$", "-test.v", "-test.count=1"}
}

// runActivatedChild starts cmd, which runs TestActivatedChild on the unix
// socket at path and a TCP one at tcpAt, calls started, and checks that
// requests on both reach the child.
func runActivatedChild(t *testing.T, cmd *exec.Cmd, path, tcpAt string, started func()) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("child: %v", err)
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Errorf("the child did not end within 60s")
			<-exited
		}
		if t.Failed() || !strings.Contains(out.String(), "--- PASS: TestActivatedChild") {
			t.Errorf("child's output:\n%s", out.String())
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("the child removed the passed socket's file (its maker's): %v", err)
		}
	}()
	child := cmd.Process.Pid
	want := fmt.Sprintf("pid=%d caller uid=%d pid=%d", child, os.Getuid(), os.Getpid())
	if got := get(t, unixClient(path), "http://credproxy/"); got != want {
		t.Errorf("over the passed unix socket: %q, want %q", got, want)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if got, want := get(t, client, "http://"+tcpAt+"/"), fmt.Sprintf("pid=%d caller none", child); got != want {
		t.Errorf("over the passed TCP socket: %q, want %q", got, want)
	}
	get(t, client, "http://"+tcpAt+"/quit")
}

// TestActivatedChild is the activation tests' child: it serves the
// passed sockets until asked to quit.
func TestActivatedChild(t *testing.T) {
	path := os.Getenv(activatedChildEnv)
	if path == "" {
		t.Skip("run by the activation tests only")
	}
	socks, err := SystemdSockets()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%s is still in the environment", k, v)
		}
	}
	// The unix socket by its address; the TCP one by its name, port 0
	// matching no bound address.
	unixLn := mustListen(t, UnixPrefix+path, Options{Name: "reverse-default", Sockets: socks})
	tcpLn := mustListen(t, "127.0.0.1:0", Options{Name: "admin", Sockets: socks})
	if err := socks.CloseUnclaimed(); err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quit" {
			defer close(quit)
		}
		caller := "none"
		if p, ok := PeerFrom(r.Context()); ok {
			caller = "uid=" + strconv.Itoa(p.UID) + " pid=" + strconv.Itoa(p.PID)
		}
		fmt.Fprintf(w, "pid=%d caller %s", os.Getpid(), caller)
	})
	var servers []*http.Server
	for _, ln := range []net.Listener{unixLn, tcpLn} {
		srv := &http.Server{Handler: h, ConnContext: ConnContext, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		servers = append(servers, srv)
	}
	select {
	case <-quit:
	case <-time.After(30 * time.Second):
		t.Error("no /quit within 30s")
	}
	// Shutdown, not Close: the answer to /quit is still being written.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(ctx)
	}
}

// TestSocketTakenByNameOfTheOtherKind: a unix socket taken by name for a
// listener configured with a TCP address still learns its callers.
func TestSocketTakenByNameOfTheOtherKind(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "n.sock")
	unixLn, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	socks, err := NewSockets([]*os.File{socketFile(t, unixLn, "admin")})
	if err != nil {
		t.Fatal(err)
	}
	ln := mustListen(t, "127.0.0.1:0", Options{Name: "admin", Sockets: socks})
	if ln.Addr().String() != path {
		t.Fatalf("listener at %s, want the passed socket at %s", ln.Addr(), path)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ac, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if pc, ok := ac.(*Conn); !ok || !pc.Peer.Known {
		t.Errorf("accepted %T, want a *Conn with a known caller", ac)
	}
}
