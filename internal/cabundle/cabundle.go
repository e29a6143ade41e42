// Package cabundle writes a trust bundle for clients set up by hand: the
// system roots followed by credproxy's CA, for the variables that
// replace the system roots rather than add to them (Python's
// SSL_CERT_FILE and REQUESTS_CA_BUNDLE, curl's CURL_CA_BUNDLE). A bundle
// of credproxy's CA alone would break every other host those clients
// reach. `credproxy ca bundle` is its command.
package cabundle

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/credproxy/credproxy/internal/atomicfile"
	"github.com/credproxy/credproxy/internal/execrun"
)

// Written says what Write put in the bundle.
type Written struct {
	// RootsFrom is the file the system roots came from.
	RootsFrom string
	// CAFrom is where credproxy's CA came from: a file or a URL.
	CAFrom string
	// CASHA256 is the SHA-256 of the CA certificate (DER).
	CASHA256 [32]byte
}

// Write writes out, the roots of SSL_CERT_FILE (when env sets it) or the
// system's, then credproxy's CA: fetched from from (a running
// credproxy's admin address or URL; /ca.pem), else read from
// CREDPROXY_CA_CERT_FILE, else fetched from CREDPROXY_ADMIN_ADDR
// (127.0.0.1:9901 by default). out is replaced atomically, mode 0644
// (certificates are public); nothing is written on an error.
func Write(ctx context.Context, out, from string, env map[string]string) (Written, error) {
	caPEM, src, err := fetchCA(ctx, from, env)
	if err != nil {
		return Written{}, err
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return Written{}, fmt.Errorf("no certificate in %s", src)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return Written{}, fmt.Errorf("%s: %w", src, err)
	}
	bundle, rootsFrom := execrun.Bundle(env, caPEM)
	if rootsFrom == "" {
		return Written{}, errors.New("no system CA bundle found: set SSL_CERT_FILE to yours")
	}
	if err := atomicfile.WriteFile(out, bundle, 0o644); err != nil {
		return Written{}, err
	}
	return Written{RootsFrom: rootsFrom, CAFrom: src, CASHA256: sha256.Sum256(block.Bytes)}, nil
}

// fetchCA returns credproxy's CA in PEM and where it came from.
func fetchCA(ctx context.Context, from string, env map[string]string) ([]byte, string, error) {
	if from == "" {
		if f := env["CREDPROXY_CA_CERT_FILE"]; f != "" {
			b, err := os.ReadFile(f)
			return b, f, err
		}
		from = "127.0.0.1:9901"
		if a := env["CREDPROXY_ADMIN_ADDR"]; a != "" {
			from = a
		}
	}
	if !strings.Contains(from, "://") {
		from = "http://" + from
	}
	u, err := url.Parse(from)
	if err != nil {
		return nil, from, err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ca.pem"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, u.String(), err
	}
	// The admin listener is local: never through a proxy.
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		return nil, u.String(), err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, u.String(), fmt.Errorf("%s answered HTTP %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return b, u.String(), err
}
