package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// TestExecConsoleOnTerminal: exec's own messages are in console format
// when its stderr is a terminal, unless CREDPROXY_LOG_FORMAT says
// otherwise; JSON when stderr is not a terminal.
func TestExecConsoleOnTerminal(t *testing.T) {
	const apiToken = "execTTY-6a0c-1f3e"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	env["CREDPROXY_ADMIN_ADDR"] = "127.0.0.1:0" // ignored by exec: one warning
	onTTY := func(env map[string]string) string {
		master, slave := openPTY(t)
		cmd := command(binary, env, "exec", "--", "true")
		cmd.Stderr = slave
		var out bytes.Buffer
		done := make(chan struct{})
		go func() { _, _ = io.Copy(&out, master); close(done) }()
		if err := cmd.Run(); err != nil {
			t.Fatalf("exec: %v", err)
		}
		slave.Close()
		<-done
		return out.String()
	}
	if got := onTTY(env); !strings.Contains(got, "WARN\texec: binds no configured listener") || strings.Contains(got, `"level"`) {
		t.Errorf("on a terminal, want console format: %q", got)
	}
	env["CREDPROXY_LOG_FORMAT"] = "json"
	if got := onTTY(env); !strings.Contains(got, `"level":"warn"`) {
		t.Errorf("CREDPROXY_LOG_FORMAT=json on a terminal, want JSON: %q", got)
	}
	delete(env, "CREDPROXY_LOG_FORMAT")
	if _, _, errOut := runBinary(t, env, "exec", "--", "true"); !strings.Contains(errOut, `"level":"warn"`) {
		t.Errorf("not a terminal, want JSON: %q", errOut)
	}
}
