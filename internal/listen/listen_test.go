package listen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shortTempDir is a temporary directory with a path short enough for a
// unix socket (108 bytes), which t.TempDir's may not be.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ln")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// withUmask sets the process umask for the test. Tests of this package
// do not run in parallel: the umask is the process's.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func mustListen(t *testing.T, addr string, opts Options) net.Listener {
	t.Helper()
	ln, err := Listen(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestUnixSocketMode: the socket file has exactly the mode asked for
// (0660 by default), whatever the umask takes away.
func TestUnixSocketMode(t *testing.T) {
	withUmask(t, 0o077)
	dir := shortTempDir(t)
	for _, tc := range []struct {
		mode, want os.FileMode
	}{
		{0, 0o660},
		{0o600, 0o600},
		{0o640, 0o640},
		{0o666, 0o666},
	} {
		path := filepath.Join(dir, fmt.Sprintf("m%o.sock", tc.mode))
		mustListen(t, UnixPrefix+path, Options{Mode: tc.mode})
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != tc.want {
			t.Errorf("Mode %#o: file mode %v, want a socket with %v", tc.mode, fi.Mode(), tc.want)
		}
	}
}

// TestModeBeforeBind: the kernel makes the socket file with the mode set
// before bind (less the umask), before any chmod: with no umask the file
// is never the 0777 a plain bind makes.
func TestModeBeforeBind(t *testing.T) {
	withUmask(t, 0)
	path := filepath.Join(shortTempDir(t), "b.sock")
	lc := net.ListenConfig{Control: modeBeforeBind(0o640)}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("socket file made with %v, want 0640", fi.Mode().Perm())
	}
}

// TestUnixRemovedAtClose: the socket file Listen made goes with Close.
func TestUnixRemovedAtClose(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "c.sock")
	ln, err := Listen(UnixPrefix+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Close, Lstat = %v; want the file gone", err)
	}
}

// TestStaleSocketReplaced: a socket file nobody answers on, as a killed
// run leaves, is replaced and the new listener answers.
func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "s.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false) // as if killed
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale file is not there: %v", err)
	}
	ln := mustListen(t, UnixPrefix+path, Options{})
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the new listener does not answer: %v", err)
	}
	c.Close()
}

// TestLiveSocketRefused: a socket another listener answers on is an error
// naming it, and that listener keeps its file and keeps answering.
func TestLiveSocketRefused(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "l.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ln, err := Listen(UnixPrefix+path, Options{})
	if err == nil {
		ln.Close()
		t.Fatal("Listen on a live socket succeeded")
	}
	if want := "another process is listening on unix:" + path; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live listener no longer answers: %v", err)
	}
	c.Close()
}

// TestNonSocketRefused: a regular file, a directory or a symlink at the
// path is an error, and stays as it was.
func TestNonSocketRefused(t *testing.T) {
	dir := shortTempDir(t)
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir.sock")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, sub, link} {
		ln, err := Listen(UnixPrefix+path, Options{})
		if err == nil {
			ln.Close()
			t.Errorf("Listen on %s succeeded", path)
			continue
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("Listen on %s: error %q does not say the path is not a socket", path, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file now reads %q, %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("the symlink is gone: %v", err)
	}
}

// TestBadAddressesAndModes: a relative or abstract unix address, and
// mode bits beyond 0777, are refused before anything is bound.
func TestBadAddressesAndModes(t *testing.T) {
	dir := shortTempDir(t)
	for _, tc := range []struct {
		desc, addr string
		mode       os.FileMode
		want       string
	}{
		{desc: "relative", addr: "unix:x.sock", want: "absolute path"},
		{desc: "abstract", addr: "unix:@credproxy", want: "absolute path"},
		{desc: "empty", addr: "unix:", want: "absolute path"},
		{desc: "setuid bit", addr: UnixPrefix + filepath.Join(dir, "m.sock"), mode: os.ModeSetuid | 0o660, want: "beyond 0777"},
		{desc: "no port", addr: "127.0.0.1", want: "missing port"},
	} {
		ln, err := Listen(tc.addr, Options{Mode: tc.mode})
		if err == nil {
			ln.Close()
			t.Errorf("%s: Listen(%q) succeeded", tc.desc, tc.addr)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to say %q", tc.desc, err, tc.want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "m.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused mode left a socket file: %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want os.FileMode
		bad  bool
	}{
		{in: "0660", want: 0o660},
		{in: "660", want: 0o660},
		{in: "0600", want: 0o600},
		{in: "0777", want: 0o777},
		{in: "0", bad: true},
		{in: "1777", bad: true},
		{in: "0689", bad: true},
		{in: "rw-rw----", bad: true},
		{in: "", bad: true},
	} {
		got, err := ParseMode(tc.in)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
				t.Errorf("ParseMode(%q) = %v, %v; want an error quoting it", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// serveHTTP serves on ln with ConnContext and a handler that answers with
// the caller PeerFrom gives ("none" without one).
func serveHTTP(t *testing.T, ln net.Listener) {
	t.Helper()
	srv := &http.Server{
		ConnContext:       ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := PeerFrom(r.Context())
			if !ok {
				io.WriteString(w, "none")
				return
			}
			fmt.Fprintf(w, "uid=%d gid=%d pid=%d known=%v", p.UID, p.GID, p.PID, p.Known)
		}),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// unixClient is Go's net/http client dialing the socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTCPHasNoPeer: a TCP caller has no identity; with the TCPPeer hook
// set, the hook's answer is the caller.
func TestTCPHasNoPeer(t *testing.T) {
	ln := mustListen(t, "127.0.0.1:0", Options{})
	if _, ok := ln.(*net.TCPListener); !ok {
		t.Errorf("a TCP listener without a hook is a %T, want it as net made it", ln)
	}
	serveHTTP(t, ln)
	if got := get(t, http.DefaultClient, "http://"+ln.Addr().String()+"/"); got != "none" {
		t.Errorf("TCP caller: %q, want none", got)
	}

	hooked := mustListen(t, "127.0.0.1:0", Options{TCPPeer: func(c net.Conn) Peer {
		if _, ok := c.(*net.TCPConn); !ok {
			t.Errorf("the hook got a %T", c)
		}
		return Peer{UID: 7, GID: 8, PID: 9, Known: true}
	}})
	serveHTTP(t, hooked)
	if got, want := get(t, http.DefaultClient, "http://"+hooked.Addr().String()+"/"), "uid=7 gid=8 pid=9 known=true"; got != want {
		t.Errorf("TCP caller with the hook: %q, want %q", got, want)
	}
}
