package server

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/listen"
)

// passedSocket is a listening TCP socket as systemd would pass it, named
// name (FileDescriptorName=).
func passedSocket(t *testing.T, name string) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), name), ln.Addr().String()
}

// TestServeTakesSystemdSockets: a socket systemd passed named
// reverse-default serves the default route instead of a new bind, and
// one no listener takes fails Serve, naming it, with nothing left bound.
func TestServeTakesSystemdSockets(t *testing.T) {
	cfg, err := config.Load(map[string]string{
		"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": "t", "CREDPROXY_UPSTREAM": "https://api.example.com",
		"CREDPROXY_LISTEN": "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR": "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}

	f, passedAddr := passedSocket(t, "reverse-default")
	socks, err := listen.NewSockets([]*os.File{f})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	ctx, cancel := context.WithCancel(t.Context())
	srv, err := New(cfg, Options{Sockets: socks, OnListen: func(name, addr string) {
		got[name] = addr
		if len(got) == 2 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ctx); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if got["route default"] != passedAddr {
		t.Errorf("the route listened on %s, not the passed socket's %s", got["route default"], passedAddr)
	}

	f, _ = passedSocket(t, "nobody")
	socks, err = listen.NewSockets([]*os.File{f})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = New(cfg, Options{Sockets: socks, OnListen: func(name, addr string) { t.Errorf("%s served at %s", name, addr) }})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Serve(t.Context())
	if err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("Serve with an unclaimed socket: %v", err)
	}
}
