package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRelayDelays: over the relay, a new connection's first answer comes
// two round trips after the connect (TCP, then the request), each later
// exchange one round trip; a half close reaches the other side and back.
func TestRelayDelays(t *testing.T) {
	const rtt = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }() // echo until the client's FIN
		}
	}()
	r, err := startRelay(ln.Addr().String(), rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()

	t0 := time.Now()
	c, err := net.Dial("tcp", r.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	echo := func(s string) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := io.WriteString(c, s+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != s+"\n" {
			t.Fatalf("echo %q: %q, %v", s, line, err)
		}
		return time.Since(start)
	}
	echo("first")
	between(t, "first answer after the connect", time.Since(t0), 2*rtt, rtt)
	between(t, "a later exchange", echo("second"), rtt, rtt)

	start := time.Now()
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Fatalf("after the half close: %q, %v", b, err)
	}
	between(t, "the FIN there and back", time.Since(start), rtt, rtt)
}

// TestRelayTLS: an HTTPS call on a new connection over the relay takes
// three round trips (TCP, TLS 1.3, the request); on the kept connection,
// one.
func TestRelayTLS(t *testing.T) {
	const rtt = 200 * time.Millisecond
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(upstreamBody) }))
	defer srv.Close()
	r, err := startRelay(strings.TrimPrefix(srv.URL, "https://"), rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	client, closeIdle := loadClient(loadOptions{TLS: &tls.Config{RootCAs: pool}})
	defer closeIdle()
	req, err := loadRequest(context.Background(), loadOptions{URL: "https://" + r.addr() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{3 * rtt, rtt} {
		start := time.Now()
		if err := getOK(client, req); err != nil {
			t.Fatal(err)
		}
		between(t, []string{"new connection", "kept connection"}[i], time.Since(start), want, rtt)
	}
}

// between fails unless got is at least want (the relay's delays are
// sleeps, so never shorter) and less than want plus three quarters of
// the round trip rtt: slack for a busy machine, short of a round trip
// too many.
func between(t *testing.T, what string, got, want, rtt time.Duration) {
	t.Helper()
	if slack := rtt * 3 / 4; got < want || got > want+slack {
		t.Errorf("%s: %v, want %v (up to %v more)", what, got, want, slack)
	}
}
