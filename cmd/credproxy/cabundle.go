package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credproxy/credproxy/internal/execrun"
)

// caBundleUsage is ca bundle's usage line.
const caBundleUsage = "usage: credproxy ca bundle [--from URL] OUT"

// caBundle is `credproxy ca bundle [--from URL] OUT`: it writes OUT, a
// PEM bundle of the system roots (SSL_CERT_FILE when set, else the
// system's) and credproxy's CA, for clients set up by hand: Python's
// SSL_CERT_FILE and REQUESTS_CA_BUNDLE, curl's CURL_CA_BUNDLE, which
// replace the system roots rather than add to them. The CA is fetched
// from --from (a running credproxy's admin address, /ca.pem), else read
// from CREDPROXY_CA_CERT_FILE, else fetched from CREDPROXY_ADMIN_ADDR
// (127.0.0.1:9901 by default).
func caBundle(ctx context.Context, args []string, env map[string]string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ca bundle", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	from := fs.String("from", "", "a running credproxy's admin URL, whose /ca.pem is fetched")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return &usageError{caBundleUsage}
	}
	out := fs.Arg(0)
	caPEM, src, err := bundleCA(ctx, *from, env)
	if err != nil {
		return fmt.Errorf("ca bundle: %w", err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("ca bundle: no certificate in %s", src)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return fmt.Errorf("ca bundle: %s: %w", src, err)
	}
	bundle, rootsFrom := execrun.Bundle(env, caPEM)
	if rootsFrom == "" {
		return fmt.Errorf("ca bundle: no system CA bundle found: set SSL_CERT_FILE to yours")
	}
	if err := writeAtomic(out, bundle); err != nil {
		return fmt.Errorf("ca bundle: %w", err)
	}
	sum := sha256.Sum256(block.Bytes)
	fmt.Fprintf(stdout, "wrote %s: the roots of %s and credproxy's CA from %s (SHA-256 %X)\n", out, rootsFrom, src, sum)
	return nil
}

// bundleCA returns credproxy's CA in PEM and where it came from.
func bundleCA(ctx context.Context, from string, env map[string]string) ([]byte, string, error) {
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

// writeAtomic writes data to name through a temporary file renamed over
// it, mode 0644 (certificates are public).
func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".ca-bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
