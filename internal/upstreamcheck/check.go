package upstreamcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/credproxy/credproxy/internal/outbound"
)

// DefaultTimeout bounds one upstream's check, resolving, connecting and
// the handshake together: an upstream that takes longer to answer a
// handshake is in trouble, whatever a request would do.
const DefaultTimeout = 5 * time.Second

// Options are how an upstream is checked. The zero value checks an
// https:// upstream against the system roots within DefaultTimeout.
type Options struct {
	// RootCAs, when not nil, replaces the system roots (SSL_CERT_FILE,
	// SSL_CERT_DIR) the upstream's certificate is verified against:
	// tests pass their CA, credproxy passes nil, as the upstream
	// transport does.
	RootCAs *x509.CertPool
	// AllowInsecure is the route's ALLOW_INSECURE_UPSTREAM: an http://
	// upstream is checked by a TCP connection alone.
	AllowInsecure bool
	// Timeout bounds the check; zero means DefaultTimeout.
	Timeout time.Duration

	// dial replaces outbound's dialer in tests, so that a name can
	// reach a test server on 127.0.0.1.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Step is what was being done when a check failed.
type Step string

// The steps of a check, in order.
const (
	// Scheme: the URL's scheme is not one credproxy forwards to (or
	// http:// without ALLOW_INSECURE_UPSTREAM); nothing was sent.
	Scheme Step = "scheme"
	// Resolve: the host name does not resolve.
	Resolve Step = "resolve"
	// Connect: no TCP connection could be made.
	Connect Step = "connect"
	// Handshake: the TLS handshake failed, the certificate's
	// verification among its causes.
	Handshake Step = "tls handshake"
)

// Error is a failed check: the upstream's host (host:port where the
// port is known), the step that failed and why.
type Error struct {
	Host string
	Step Step
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("upstream %s: %s: %v", e.Host, e.Step, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Check resolves u's host, connects to it as every outbound connection
// does (internal/outbound: never through a proxy) and, for https://,
// completes a TLS handshake with outbound's client settings, the
// certificate verified for u's host; then it hangs up without sending a
// byte of HTTP. For http:// (allowed by opts.AllowInsecure) the TCP
// connection is the check. A failure is an *Error.
//
// Check may be called from any goroutine; it shares nothing between
// calls.
func Check(ctx context.Context, u *url.URL, opts Options) error {
	addr, err := address(u, opts.AllowInsecure)
	if err != nil {
		return err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if host, _, _ := net.SplitHostPort(addr); reservedInvalid(host) {
		return &Error{Host: addr, Step: Resolve, Err: &net.DNSError{Err: "no such host (.invalid never resolves, RFC 6761)", Name: host, IsNotFound: true}}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := opts.dial
	if dial == nil {
		dial = outbound.Dialer().DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return &Error{Host: addr, Step: Resolve, Err: timedOut(ctx, timeout, dnsErr)}
		}
		return &Error{Host: addr, Step: Connect, Err: timedOut(ctx, timeout, err)}
	}
	defer conn.Close()
	if u.Scheme == "http" {
		return nil
	}
	cfg := outbound.TLSConfig()
	cfg.RootCAs = opts.RootCAs
	cfg.ServerName = u.Hostname()
	// What the upstream transport offers, so that a server that insists
	// on ALPN answers as it would to credproxy's requests.
	cfg.NextProtos = []string{"h2", "http/1.1"}
	if err := tls.Client(conn, cfg).HandshakeContext(ctx); err != nil {
		return &Error{Host: addr, Step: Handshake, Err: timedOut(ctx, timeout, err)}
	}
	return nil
}

// timedOut says so when err came of the check's own timeout, whose bare
// "context deadline exceeded" would not tell an operator what waited.
func timedOut(ctx context.Context, timeout time.Duration, err error) error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return err
}

// address is the host:port to dial for u, the port defaulting to the
// scheme's; an error for a scheme credproxy does not forward to.
func address(u *url.URL, allowInsecure bool) (string, error) {
	port := u.Port()
	switch {
	case u.Scheme == "https":
		if port == "" {
			port = "443"
		}
	case u.Scheme == "http" && allowInsecure:
		if port == "" {
			port = "80"
		}
	case u.Scheme == "http":
		return "", &Error{Host: u.Host, Step: Scheme, Err: errors.New("an http:// upstream needs ALLOW_INSECURE_UPSTREAM")}
	default:
		return "", &Error{Host: u.Host, Step: Scheme, Err: fmt.Errorf("scheme %q is neither https nor http", u.Scheme)}
	}
	if u.Hostname() == "" {
		return "", &Error{Host: u.Host, Step: Scheme, Err: errors.New("no host")}
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// reservedInvalid reports whether host is under the .invalid top-level
// domain, which RFC 6761 reserves as never resolving: the answer is known
// without asking a name server (the example settings use such names, and
// checking them sends nothing off the machine).
func reservedInvalid(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "invalid" || strings.HasSuffix(h, ".invalid")
}
