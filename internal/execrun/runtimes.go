package execrun

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/tokencache"
)

// javaStorePassword is the password of the Java trust store exec writes.
// It is no secret: it stands in JAVA_TOOL_OPTIONS, and the store holds
// certificates only, in a directory of the user's alone. PKCS#12 wants
// one for its integrity MAC, which Java checks when one is given.
const javaStorePassword = "credproxy"

// Bundle is the CA bundle a client needs to reach route hosts through a
// credproxy and every other host as before: the system roots (the
// user's SSL_CERT_FILE when set, else the system bundle) followed by
// caPEM. rootsFrom is where the roots came from, "" when none was found.
// exec writes it for its command; `credproxy ca bundle` for manual
// setups.
func Bundle(env map[string]string, caPEM []byte) (bundle []byte, rootsFrom string) {
	roots, from := systemRoots(env)
	return joinPEM(roots, caPEM), from
}

// javaTrustStore is a PKCS#12 trust store of ca (first, as
// "credproxy-exec-ca") and every certificate of the PEM bundle roots, for
// javax.net.ssl.trustStore: Java reads neither SSL_CERT_FILE nor a PEM
// file. It is written with software.sslmate.com/src/go-pkcs12's
// Modern2023 encoder (AES-256, HMAC-SHA-256), which marks each
// certificate trusted for Java; certificates of roots that do not parse
// are skipped.
func javaTrustStore(ca *x509.Certificate, roots []byte) ([]byte, error) {
	entries := []pkcs12.TrustStoreEntry{{Cert: ca, FriendlyName: "credproxy-exec-ca"}}
	for rest := roots; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			entries = append(entries, pkcs12.TrustStoreEntry{Cert: c, FriendlyName: fmt.Sprintf("root-%d", len(entries))})
		}
	}
	return pkcs12.Modern2023.EncodeTrustStoreEntries(entries, javaStorePassword)
}

// javaToolOptions is JAVA_TOOL_OPTIONS for the command: the proxy of
// addr for http and https (Java sends no proxy credentials on a CONNECT,
// so exec's proxy serves it by its uid), an empty http.nonProxyHosts
// (JDK 17 appends its loopback patterns to any other value, so that a
// route host on localhost would go around the proxy), and the trust
// store. The user's own options come after exec's: the JVM takes the
// last -D of a property, so the user's choice wins, and the command
// line's (which follow JAVA_TOOL_OPTIONS) over both.
func javaToolOptions(user, addr, store string) string {
	host, port, _ := net.SplitHostPort(addr)
	opts := []string{
		"-Dhttps.proxyHost=" + host, "-Dhttps.proxyPort=" + port,
		"-Dhttp.proxyHost=" + host, "-Dhttp.proxyPort=" + port,
		"-Dhttp.nonProxyHosts=",
		"-Djavax.net.ssl.trustStore=" + javaQuote(store),
		"-Djavax.net.ssl.trustStoreType=PKCS12",
		"-Djavax.net.ssl.trustStorePassword=" + javaStorePassword,
	}
	if user = strings.TrimSpace(user); user != "" {
		opts = append(opts, user)
	}
	return strings.Join(opts, " ")
}

// javaQuote quotes a value with white space for JAVA_TOOL_OPTIONS, which
// the JVM splits at white space outside quotes (Java 9 and later).
func javaQuote(s string) string {
	if strings.ContainsAny(s, " \t\n") {
		return `"` + s + `"`
	}
	return s
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && termios(f)
}

// whyNoToken rewords WaitTokens' error, one line per route without a
// token, to say what happened: the identity service's refusal (its
// status and OAuth 2.0 error code, as tokencache states it for a client:
// no secret, no service text), or that it did not answer in time.
func whyNoToken(err error, routes []config.Route) error {
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var u *tokencache.UnavailableError
		if !errors.As(e, &u) {
			out = append(out, e)
			continue
		}
		wait, prefix := time.Duration(0), ""
		for _, rc := range routes {
			if rc.Name == u.Route {
				wait, prefix = rc.TokenWait, rc.Prefix
			}
		}
		// The retry's schedule is the running service's concern:
		// exec stops here.
		reason, _, _ := strings.Cut(u.Detail, "; next attempt in")
		if u.Cause == nil && strings.HasPrefix(reason, "the first exchange has not finished") {
			reason = fmt.Sprintf("the identity service did not answer within %s (%sTOKEN_WAIT sets how long exec waits)", wait, prefix)
		}
		out = append(out, fmt.Errorf("route %s: no token within %s: %s", u.Route, wait, reason))
	}
	return errors.Join(out...)
}
