package mitm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verify checks leaf for host against ca as a TLS client would.
func verify(ca *CA, leaf *tls.Certificate, host string) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	_, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
	return err
}

// TestConstrainedCAVouchesOnlyForItsHosts: a CA made with Hosts signs
// leaves that Go's verifier accepts for those hosts (and a subdomain of a
// name) and refuses for any other name or address, though the same CA
// signed them.
func TestConstrainedCAVouchesOnlyForItsHosts(t *testing.T) {
	tcs := []struct {
		desc  string
		hosts []string
		ok    []string
		bad   []string
	}{
		{desc: "names and an address", hosts: []string{"api.example.com", "Stream.Example.NET", "127.0.0.1"},
			ok:  []string{"api.example.com", "x.api.example.com", "stream.example.net", "127.0.0.1"},
			bad: []string{"other.example", "example.com", "127.0.0.2", "::1"}},
		{desc: "names only: every address excluded", hosts: []string{"api.example.com"},
			ok:  []string{"api.example.com"},
			bad: []string{"127.0.0.1", "10.0.0.1", "::1", "evil.example"}},
		{desc: "an address only: every name excluded", hosts: []string{"::1"},
			ok:  []string{"::1"},
			bad: []string{"localhost", "api.example.com", "127.0.0.1"}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			ca, err := NewCAWith(CAOptions{Name: "constrained", Lifetime: time.Hour, Hosts: tc.hosts})
			if err != nil {
				t.Fatal(err)
			}
			c := ca.Certificate()
			if !c.PermittedDNSDomainsCritical {
				t.Error("name constraints not critical")
			}
			leaves := NewLeaves(ca, nil)
			for _, h := range tc.ok {
				leaf, err := leaves.Get(h)
				if err != nil {
					t.Fatal(err)
				}
				if err := verify(ca, leaf, h); err != nil {
					t.Errorf("leaf for %s refused: %v", h, err)
				}
			}
			for _, h := range tc.bad {
				leaf, err := leaves.Get(h)
				if err != nil {
					t.Fatal(err)
				}
				var inv x509.CertificateInvalidError
				if err := verify(ca, leaf, h); err == nil {
					t.Errorf("leaf for %s accepted", h)
				} else if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
					t.Errorf("leaf for %s refused for another reason: %v", h, err)
				}
			}
		})
	}
}

// TestCALifetimes: a CA lives DefaultCALifetime (two years) unless told
// otherwise; a leaf never outlives its CA, and a leaf that ends with its
// CA is not re-signed on every call near the end.
func TestCALifetimes(t *testing.T) {
	ca, err := NewCA("default")
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if got := c.NotAfter.Sub(c.NotBefore) - leafBackdate; got < DefaultCALifetime-time.Minute || got > DefaultCALifetime {
		t.Errorf("default CA lifetime %v, want %v", got, DefaultCALifetime)
	}
	if DefaultCALifetime != 2*365*24*time.Hour {
		t.Errorf("DefaultCALifetime = %v, want two years", DefaultCALifetime)
	}
	if len(c.PermittedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedIPRanges) != 0 {
		t.Error("a CA without Hosts is constrained")
	}

	short, err := NewCAWith(CAOptions{Name: "short", Lifetime: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaves := NewLeaves(short, nil)
	first, err := leaves.Get("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !first.Leaf.NotAfter.Equal(short.Certificate().NotAfter) {
		t.Errorf("leaf ends %v, CA %v: want the leaf clamped to the CA", first.Leaf.NotAfter, short.Certificate().NotAfter)
	}
	if again, _ := leaves.Get("api.example.com"); again != first || leaves.Signed() != 1 {
		t.Errorf("a leaf that ends with its CA was re-signed (%d signatures)", leaves.Signed())
	}
}

// TestCheckHost: what can be a name constraint, and the message for what
// cannot.
func TestCheckHost(t *testing.T) {
	for _, h := range []string{"api.example.com", "API.Example.com.", "localhost", "10.0.0.1", "::1", "a-b.c0", "_svc.example"} {
		if err := CheckHost(h); err != nil {
			t.Errorf("%q: %v", h, err)
		}
	}
	for _, h := range []string{"", "*.example.com", "api.example.com:443", "https://api.example.com", "a..b", "a b", "10.0.0.0/8", strings.Repeat("a", 64) + ".example"} {
		err := CheckHost(h)
		if err == nil || !strings.Contains(err.Error(), "not a host name or IP address") {
			t.Errorf("%q: %v", h, err)
		}
	}
	if _, err := NewCAWith(CAOptions{Name: "x", Hosts: []string{"ok.example", "*.bad.example"}}); err == nil || !strings.Contains(err.Error(), `"*.bad.example"`) {
		t.Errorf("a CA with a bad host: %v", err)
	}
}

// TestCurlHonoursNameConstraints: curl (OpenSSL) trusting only a
// constrained CA accepts a server whose leaf is for a route host and
// refuses one whose leaf, signed by the same CA, is for another host.
func TestCurlHonoursNameConstraints(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required (CI installs it)")
	}
	ca, err := NewCAWith(CAOptions{Name: "curl constrained", Lifetime: time.Hour, Hosts: []string{"api.example.com", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	leaves := NewLeaves(ca, nil)
	tcs := []struct {
		desc, host string
		ok         bool
	}{
		{desc: "route host", host: "api.example.com", ok: true},
		{desc: "route address", host: "127.0.0.1", ok: true},
		{desc: "another host", host: "other.example", ok: false},
		{desc: "a parent of the route host", host: "example.com", ok: false},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			leaf, err := leaves.Get(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("reached")) }))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}}
			srv.StartTLS()
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			url := "https://" + net.JoinHostPort(tc.host, port) + "/"
			cmd := exec.Command(curl, "-sS", "--noproxy", "*", "--cacert", caFile, "--resolve", net.JoinHostPort(tc.host, port)+":127.0.0.1", url)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			out, err := cmd.CombinedOutput()
			switch {
			case tc.ok && (err != nil || string(out) != "reached"):
				t.Errorf("curl refused %s: %v %s", tc.host, err, out)
			case !tc.ok && err == nil:
				t.Errorf("curl accepted a leaf for %s: %s", tc.host, out)
			case !tc.ok && !strings.Contains(strings.ToLower(string(out)), "certificate"):
				t.Errorf("curl failed for another reason than the certificate: %s", out)
			case !tc.ok:
				t.Logf("curl refused %s: %s", tc.host, out)
			}
		})
	}
}
