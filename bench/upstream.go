package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// upstreamName is the DNS name in the upstream's certificate besides
// 127.0.0.1: nginx and HAProxy verify a host name, Go clients an IP.
const upstreamName = "api.bench.test"

// upstreamBody is what the upstream answers: the size of a small API
// response.
var upstreamBody = []byte(`{"status":"ok","data":[{"metric":"cpu.load","value":0.42,"host":"bench-01","tags":{"env":"bench","region":"local"}}]}` + "\n")

// writeUpstreamPKI writes a test CA (ca.pem) and the upstream's leaf
// (upstream.pem, upstream-key.pem) into dir.
func writeUpstreamPKI(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "credproxy bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: upstreamName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{upstreamName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.pem":           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"upstream.pem":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		"upstream-key.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	// HAProxy wants certificate and key in one file for a bind line; not
	// needed here, but the combined file is handy for manual runs.
	files["upstream-combined.pem"] = append(append([]byte{}, files["upstream.pem"]...), files["upstream-key.pem"]...)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// runUpstream is the "upstream" subcommand: the TLS API every contender
// forwards to. It runs in a process of its own so that it does not share a
// Go scheduler with the harness's load generator. It answers 200 with
// upstreamBody when the Authorization header is exactly "Bearer <token>",
// 401 otherwise, so a contender that fails to inject shows up as errors.
func runUpstream(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: bench upstream DIR PORT TOKEN")
	}
	dir, port, token := args[0], args[1], args[2]
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("port %q: %w", port, err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "upstream.pem"), filepath.Join(dir, "upstream-key.pem"))
	if err != nil {
		return err
	}
	want := "Bearer " + token
	srv := &http.Server{
		Addr: "127.0.0.1:" + port,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			if r.Header.Get("Authorization") != want {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			h["Content-Length"] = []string{strconv.Itoa(len(upstreamBody))}
			_, _ = w.Write(upstreamBody)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	return srv.ListenAndServeTLS("", "")
}
