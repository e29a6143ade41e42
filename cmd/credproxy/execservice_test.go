package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// heldAddr listens on an ephemeral loopback port for the whole test and
// counts the connections it accepts: a credproxy that tried to bind the
// same address would fail, and one that reached it would be counted.
func heldAddr(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &conns
}

// TestExecLeavesTheServiceAlone: exec run with a service's environment
// (the route's TOKEN_SINK_FILE, LISTEN, the admin and forward addresses)
// writes no sink, so the service's token file keeps its content and is
// still there afterwards, and binds none of those addresses (the test
// holds them: a bind would fail exec). One warning names the variables.
func TestExecLeavesTheServiceAlone(t *testing.T) {
	const apiToken = "execSvc-4c1d-9ae0"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	sink := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(sink, []byte("service-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen, listenConns := heldAddr(t)
	adminAddr, adminConns := heldAddr(t)
	forwardAddr, forwardConns := heldAddr(t)
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	env["CREDPROXY_TOKEN_SINK_FILE"] = sink
	env["CREDPROXY_LISTEN"] = listen
	env["CREDPROXY_ADMIN_ADDR"] = adminAddr
	env["CREDPROXY_FORWARD_ADDR"] = forwardAddr

	code, out, errOut := runBinary(t, env, "exec", "--", "sh", "-c", `curl -sS -f "$CREDPROXY_UPSTREAM/api/v2/svc" >/dev/null && cat "$CREDPROXY_TOKEN_SINK_FILE"`)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if out != "service-token" {
		t.Errorf("the command read %q from the sink, want the service's token", out)
	}
	if b, err := os.ReadFile(sink); err != nil || string(b) != "service-token" {
		t.Errorf("after exec the sink holds %q (%v), want the service's token", b, err)
	}
	for name, n := range map[string]*atomic.Int64{"LISTEN": listenConns, "admin": adminConns, "forward": forwardConns} {
		if n.Load() != 0 {
			t.Errorf("the %s address was connected to", name)
		}
	}
	var warnings []string
	for line := range strings.SplitSeq(errOut, "\n") {
		if strings.Contains(line, "CREDPROXY_TOKEN_SINK_FILE") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("want one warning naming the variables, got %q", warnings)
	}
	for _, v := range []string{"CREDPROXY_LISTEN", "CREDPROXY_ADMIN_ADDR", "CREDPROXY_FORWARD_ADDR"} {
		if !strings.Contains(warnings[0], v) {
			t.Errorf("the warning does not name %s: %s", v, warnings[0])
		}
	}
}
