package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// TestTokenAPIRefusedThroughOwnForwardProxy: the review's commands, with
// curl against the running binary. The token API answers a direct caller,
// and through credproxy's own forward proxy (a plain request or CONNECT)
// it is never reached.
func TestTokenAPIRefusedThroughOwnForwardProxy(t *testing.T) {
	const apiToken = "selfpx-8c1e-4f0a-9d2b"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, append(onLoopback, "CREDPROXY_TOKEN_API", "true")...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	tokenURL := "http://" + addrs["admin"] + "/v1/token/default"
	proxy := "http://" + addrs["forward"]

	direct, err := exec.Command("curl", "-sS", "-H", "Metadata: true", tokenURL).CombinedOutput()
	if err != nil || !strings.Contains(string(direct), `"access_token"`) {
		t.Fatalf("a direct call of the token API: %v %s", err, direct)
	}
	for _, args := range [][]string{
		{"-x", proxy, tokenURL},
		{"-x", proxy, "--proxytunnel", tokenURL},
		{"-x", proxy, "-H", "Via: 1.1 other", tokenURL},
		{"-H", "Via: 1.1 other", tokenURL},
	} {
		out, _ := exec.Command("curl", append([]string{"-sS", "-H", "Metadata: true", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
		s := string(out)
		if strings.Contains(s, "access_token") || strings.HasSuffix(s, "\n200") {
			t.Errorf("curl %s returned a token: %s", strings.Join(args, " "), s)
		}
	}
}
