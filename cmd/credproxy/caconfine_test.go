package main

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/execrun"
	"github.com/credproxy/credproxy/mitm"
)

// parseCert parses the first PEM certificate of b.
func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("no PEM certificate in %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lifetime is how long c is valid from its issue, without the backdating.
func lifetime(c *x509.Certificate) time.Duration {
	return c.NotAfter.Sub(c.NotBefore) - time.Hour
}

// ipStrings writes IP ranges as CIDR strings.
func ipStrings(nets []*net.IPNet) []string {
	var out []string
	for _, n := range nets {
		out = append(out, n.String())
	}
	return out
}

// TestCAInitHostsAndLifetime: ca init makes a two-year CA, confined with
// critical name constraints by --hosts (before or after DIR); a bad host
// is a usage error (exit 2) naming the flag and the value.
func TestCAInitHostsAndLifetime(t *testing.T) {
	tcs := []struct {
		desc      string
		args      []string
		wantDNS   []string
		wantIP    []string
		constrain bool
	}{
		{desc: "no hosts", args: []string{"ca", "init", "DIR"}},
		{desc: "hosts after DIR", args: []string{"ca", "init", "DIR", "--hosts", "API.example.com, stream.example.net,10.1.2.3"},
			wantDNS: []string{"api.example.com", "stream.example.net"}, wantIP: []string{"10.1.2.3/32"}, constrain: true},
		{desc: "hosts before DIR", args: []string{"ca", "init", "--hosts=api.example.com", "DIR"},
			wantDNS: []string{"api.example.com"}, constrain: true},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			args := append([]string{}, tc.args...)
			for i := range args {
				if args[i] == "DIR" {
					args[i] = dir
				}
			}
			code, out, errOut := runBinary(t, nil, args...)
			if code != 0 {
				t.Fatalf("exit %d %s%s", code, out, errOut)
			}
			b, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			c := parseCert(t, b)
			if got := lifetime(c); got < mitm.DefaultCALifetime-time.Minute || got > mitm.DefaultCALifetime {
				t.Errorf("valid for %v, want two years", got)
			}
			if diff := cmp.Diff(tc.wantDNS, c.PermittedDNSDomains); tc.constrain && diff != "" {
				t.Errorf("permitted names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantIP, ipStrings(c.PermittedIPRanges)); diff != "" {
				t.Errorf("permitted addresses (-want +got):\n%s", diff)
			}
			if c.PermittedDNSDomainsCritical != tc.constrain || (len(c.PermittedDNSDomains) > 0) != tc.constrain {
				t.Errorf("constrained %v (critical %v), want %v", c.PermittedDNSDomains, c.PermittedDNSDomainsCritical, tc.constrain)
			}
		})
	}
	for _, bad := range []string{"*.example.com", "api.example.com:443", "https://api.example.com"} {
		dir := filepath.Join(t.TempDir(), "ca")
		code, _, errOut := runBinary(t, nil, "ca", "init", "--hosts", "ok.example,"+bad, dir)
		if code != 2 || !strings.Contains(errOut, "--hosts") || !strings.Contains(errOut, `"`+bad+`"`) {
			t.Errorf("--hosts %s: exit %d, stderr %q; want 2 naming --hosts and the value", bad, code, errOut)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("--hosts %s: the directory was made", bad)
		}
	}
}

// TestExecCAConfined: exec's CA, as its command sees it, lives 24 hours
// and vouches only for the route's host.
func TestExecCAConfined(t *testing.T) {
	const apiToken = "execCA-77e1-0c2b"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	code, out, errOut := runBinary(t, env, "exec", "--", "sh", "-c", `cat "$NODE_EXTRA_CA_CERTS"`)
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	c := parseCert(t, []byte(out))
	if got := lifetime(c); got < execrun.CALifetime-time.Minute || got > execrun.CALifetime {
		t.Errorf("valid for %v, want %v", got, execrun.CALifetime)
	}
	if diff := cmp.Diff([]string{"127.0.0.1/32"}, ipStrings(c.PermittedIPRanges)); diff != "" {
		t.Errorf("permitted addresses (-want +got):\n%s", diff)
	}
	if !c.PermittedDNSDomainsCritical || len(c.ExcludedIPRanges) != 0 {
		t.Errorf("constraints: critical %v, excluded %v", c.PermittedDNSDomainsCritical, c.ExcludedIPRanges)
	}
}
