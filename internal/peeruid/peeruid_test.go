package peeruid

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// accept dials ln from dial and returns the server's side of the
// connection.
func accept(t *testing.T, ln net.Listener, dial func()) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- c
	}()
	dial()
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("accept failed")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

// TestOwnUID: the client socket of a real loopback connection is found,
// with this process's uid, on IPv4 and IPv6 (where the machine has it).
func TestOwnUID(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback here: %v", network, err)
			}
			defer ln.Close()
			var client net.Conn
			server := accept(t, ln, func() {
				if client, err = net.Dial(network, ln.Addr().String()); err != nil {
					t.Fatal(err)
				}
			})
			defer client.Close()
			uid, err := TCP(server.LocalAddr(), server.RemoteAddr())
			if err != nil || uid != uint32(os.Getuid()) {
				t.Errorf("uid %d, %v; want %d", uid, err, os.Getuid())
			}
			// The same pair the other way round is the server's accepted
			// socket, not a client of this server: it must not be taken
			// for the client's entry. Asked for from the client's side,
			// it is the server's socket, also ours.
			if uid, err := TCP(client.LocalAddr(), client.RemoteAddr()); err != nil || uid != uint32(os.Getuid()) {
				t.Errorf("reverse pair: uid %d, %v", uid, err)
			}
		})
	}
}

// TestUnknownPairFailsClosed: a pair no socket has is an error, never a
// uid; so is an address that is not TCP.
func TestUnknownPairFailsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nobody := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	if uid, err := TCP(ln.Addr(), nobody); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown pair: uid %d, %v; want ErrNotFound", uid, err)
	}
	if _, err := TCP(ln.Addr(), &net.UnixAddr{Name: "/x", Net: "unix"}); err == nil {
		t.Error("a unix address got a uid")
	}
}

// TestOtherUser: a client run as nobody (65534) is reported as 65534,
// not as the server's user. It needs root to run the client as another
// user; not root, it is skipped (CI runs as root).
func TestOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as uid 65534")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required (CI installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(curl, "-s", "-m", "10", "--noproxy", "*", "http://"+ln.Addr().String()+"/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	server := accept(t, ln, func() {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	})
	defer func() { server.Close(); _ = cmd.Wait() }()
	if uid, err := TCP(server.LocalAddr(), server.RemoteAddr()); err != nil || uid != 65534 {
		t.Errorf("uid %d, %v; want 65534", uid, err)
	}
}

// TestFind reads a table: live rows only (a TIME_WAIT row shows uid 0
// and belongs to nobody), IPv4 and IPv6 rows, and unreadable rows are an
// error rather than a guess.
func TestFind(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9971 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:C350 0100007F:1F90 06 00000000:00000000 03:00000000 00000000     0        0 0 3
   2: 0100007F:C351 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2 1
   3: 00000000000000000000000001000000:C352 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1001 0 3 1
   4: 0000000000000000FFFF00000100007F:C353 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1002 0 4 1
`
	server := netip.MustParseAddrPort("127.0.0.1:8080")
	tcs := []struct {
		desc   string
		client string
		server netip.AddrPort
		uid    uint32
		found  bool
	}{
		{desc: "live IPv4 row", client: "127.0.0.1:50001", server: server, uid: 1000, found: true},
		{desc: "TIME_WAIT row ignored", client: "127.0.0.1:50000", server: server},
		{desc: "IPv6 row", client: "[::1]:50002", server: netip.MustParseAddrPort("[::1]:8080"), uid: 1001, found: true},
		{desc: "v4-mapped row", client: "127.0.0.1:50003", server: server, uid: 1002, found: true},
		{desc: "no row", client: "127.0.0.1:50009", server: server},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			uid, found, err := find(strings.NewReader(table), netip.MustParseAddrPort(tc.client), tc.server)
			if err != nil || found != tc.found || uid != tc.uid {
				t.Errorf("uid %d found %v err %v; want %d %v", uid, found, err, tc.uid, tc.found)
			}
		})
	}
	if _, _, err := find(strings.NewReader("header\n 0: zz:1 00:0 01 0 0 0 5\n"), netip.AddrPort{}, netip.AddrPort{}); err == nil {
		t.Error("an unreadable row was skipped")
	}
}
