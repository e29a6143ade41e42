package server

import (
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
)

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

// TestEphemeralCAConfined: the CA a process makes for itself is confined
// to the route hosts (UPSTREAM hosts and HOSTS, ports dropped, IP
// literals as addresses) and lives RunCALifetime under run.
func TestEphemeralCAConfined(t *testing.T) {
	env := map[string]string{
		"CREDPROXY_ROUTES":       "a,b",
		"CREDPROXY_A_AUTH":       "static",
		"CREDPROXY_A_TOKEN":      "t",
		"CREDPROXY_A_UPSTREAM":   "https://API.example.com:8443/base",
		"CREDPROXY_A_HOSTS":      "stream.example.com:443,[::1]:8443",
		"CREDPROXY_B_AUTH":       "static",
		"CREDPROXY_B_TOKEN":      "t",
		"CREDPROXY_B_UPSTREAM":   "https://127.0.0.1:9443",
		"CREDPROXY_FORWARD_ADDR": "127.0.0.1:0",
	}
	cfg, err := config.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := loadCA(cfg, RunCALifetime, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if diff := cmp.Diff([]string{"api.example.com", "stream.example.com"}, c.PermittedDNSDomains); diff != "" {
		t.Errorf("permitted names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"::1/128", "127.0.0.1/32"}, ipStrings(c.PermittedIPRanges)); diff != "" {
		t.Errorf("permitted addresses (-want +got):\n%s", diff)
	}
	if !c.PermittedDNSDomainsCritical {
		t.Error("name constraints not critical")
	}
	if got := lifetime(c); got < RunCALifetime-time.Minute || got > RunCALifetime {
		t.Errorf("valid for %v, want %v", got, RunCALifetime)
	}
}
