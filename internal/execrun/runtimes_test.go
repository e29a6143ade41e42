package execrun

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/mitm"
	"github.com/credproxy/credproxy/tokencache"
)

// TestJavaToolOptions: exec's properties come first and the user's
// after (the JVM takes the last -D, so the user's win); a path with a
// space is quoted.
func TestJavaToolOptions(t *testing.T) {
	got := javaToolOptions("  -Dfoo=bar -Dhttps.proxyPort=1 ", "127.0.0.1:4242", "/tmp/a b/t.p12")
	want := `-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=4242 -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=4242 -Dhttp.nonProxyHosts= ` +
		`-Djavax.net.ssl.trustStore="/tmp/a b/t.p12" -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=credproxy -Dfoo=bar -Dhttps.proxyPort=1`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := javaToolOptions("", "127.0.0.1:1", "/t.p12"); strings.HasSuffix(got, " ") {
		t.Errorf("trailing space: %q", got)
	}
}

// TestJavaTrustStore: the store holds exec's CA and each root of the
// bundle, and skips what does not parse.
func TestJavaTrustStore(t *testing.T) {
	ca, err := mitm.NewCAWith(mitm.CAOptions{Name: "exec test CA"})
	if err != nil {
		t.Fatal(err)
	}
	root, err := mitm.NewCAWith(mitm.CAOptions{Name: "a system root"})
	if err != nil {
		t.Fatal(err)
	}
	roots := joinPEM(pemOf(root.Certificate()), []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
	p12, err := javaTrustStore(ca.Certificate(), roots)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pkcs12.DecodeTrustStore(p12, javaStorePassword)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !certs[0].Equal(ca.Certificate()) || !certs[1].Equal(root.Certificate()) {
		t.Errorf("store holds %d certificates, want exec's CA then the root", len(certs))
	}
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestWhyNoToken: each route's line says what happened, without the
// retry schedule, and an identity service that did not answer is named
// as such.
func TestWhyNoToken(t *testing.T) {
	routes := []config.Route{{Name: "a", Prefix: "CREDPROXY_A_", TokenWait: 5 * time.Second}, {Name: "b", Prefix: "CREDPROXY_B_", TokenWait: 2 * time.Second}}
	err := errors.Join(
		fmt.Errorf("no token for route a: %w", &tokencache.UnavailableError{Route: "a", Detail: "token exchange failed: identity service answered 401 (invalid_client); next attempt in 46s", Cause: errors.New("HTTP 401")}),
		fmt.Errorf("no token for route b: %w", &tokencache.UnavailableError{Route: "b", Detail: "the first exchange has not finished"}),
	)
	want := "route a: no token within 5s: token exchange failed: identity service answered 401 (invalid_client)\n" +
		"route b: no token within 2s: the identity service did not answer within 2s (CREDPROXY_B_TOKEN_WAIT sets how long exec waits)"
	if got := whyNoToken(err, routes).Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	other := errors.New("listen: address in use")
	if got := whyNoToken(other, routes); got.Error() != other.Error() {
		t.Errorf("another error changed: %v", got)
	}
}
