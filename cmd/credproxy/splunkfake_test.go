package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/credproxy/credproxy/internal/demo"
)

// splunkAPI starts a fake Splunk Observability API over TLS on loopback:
// the session endpoints and, on every other path, an echo API that accepts
// only live sessions. certFile holds its certificate, for SSL_CERT_FILE.
func splunkAPI(t *testing.T, email, password string) (splunk *demo.Splunk, echo *demo.Echo, apiURL, certFile string) {
	t.Helper()
	splunk = demo.NewSplunk(demo.SplunkOptions{Email: email, Password: password})
	echo = demo.NewEcho(splunk.Valid, demo.EchoOptions{Header: "X-SF-Token", NoPrefix: true})
	mux := http.NewServeMux()
	mux.Handle(demo.SplunkSessionPath, splunk)
	mux.Handle("/", echo)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	certFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return splunk, echo, srv.URL, certFile
}
