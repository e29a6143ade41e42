package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// TestSeveralRoutes runs a Wavefront route (CSP app), a Splunk REST route
// (session) and a Splunk ingest route (static org token with HOSTS) in one
// process, reverse and forward, and checks that each credential reaches
// its own hosts only; at shutdown the Splunk session is ended.
func TestSeveralRoutes(t *testing.T) {
	const (
		cspSecret = "wfAppS3cret-0a1b2c"
		sfxPass   = "sfxPa55w0rd-9z8y"
		orgToken  = "sfxOrgT0ken-5e6f7g"
	)
	tlsServer := func(h http.Handler) *httptest.Server {
		s := httptest.NewTLSServer(h)
		t.Cleanup(s.Close)
		return s
	}
	csp := demo.NewCSP(demo.CSPOptions{ClientID: "wf-app", ClientSecret: cspSecret, TTL: time.Hour})
	cspSrv := tlsServer(csp)
	wfEcho := demo.NewEcho(csp.Valid, demo.EchoOptions{})
	wf := tlsServer(wfEcho)

	splunk := demo.NewSplunk(demo.SplunkOptions{Email: "ops@example.com", Password: sfxPass})
	sfxEcho := demo.NewEcho(splunk.Valid, demo.EchoOptions{Header: "X-SF-Token", NoPrefix: true})
	mux := http.NewServeMux()
	mux.Handle(demo.SplunkSessionPath, splunk)
	mux.Handle("/", sfxEcho)
	sfxAPI := tlsServer(mux)

	isOrg := func(tok string) bool { return tok == orgToken }
	ingestEcho := demo.NewEcho(isOrg, demo.EchoOptions{Header: "X-SF-Token", NoPrefix: true})
	ingest := tlsServer(ingestEcho)
	streamEcho := demo.NewEcho(isOrg, demo.EchoOptions{Header: "X-SF-Token", NoPrefix: true})
	stream := tlsServer(streamEcho)
	otherSeen := make(chan http.Header, 1)
	other := tlsServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherSeen <- r.Header.Clone() }))

	certFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: wf.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") }

	p := start(t, map[string]string{
		"CREDPROXY_ROUTES":                      "wavefront,splunk,ingest",
		"CREDPROXY_WAVEFRONT_AUTH":              "csp-oauth-app",
		"CREDPROXY_WAVEFRONT_CSP_URL":           cspSrv.URL,
		"CREDPROXY_WAVEFRONT_CSP_CLIENT_ID":     "wf-app",
		"CREDPROXY_WAVEFRONT_CSP_CLIENT_SECRET": cspSecret,
		"CREDPROXY_WAVEFRONT_UPSTREAM":          wf.URL,
		"CREDPROXY_WAVEFRONT_LISTEN":            "127.0.0.1:0",
		"CREDPROXY_SPLUNK_AUTH":                 "splunk-session",
		"CREDPROXY_SPLUNK_UPSTREAM":             sfxAPI.URL,
		"CREDPROXY_SPLUNK_SPLUNK_EMAIL":         "ops@example.com",
		"CREDPROXY_SPLUNK_SPLUNK_PASSWORD":      sfxPass,
		"CREDPROXY_SPLUNK_LISTEN":               "127.0.0.1:0",
		"CREDPROXY_INGEST_AUTH":                 "static",
		"CREDPROXY_INGEST_TOKEN":                orgToken,
		"CREDPROXY_INGEST_HEADER":               "X-SF-Token",
		"CREDPROXY_INGEST_HEADER_PREFIX":        "",
		"CREDPROXY_INGEST_UPSTREAM":             ingest.URL,
		"CREDPROXY_INGEST_HOSTS":                host(stream),
		"CREDPROXY_INGEST_LISTEN":               "127.0.0.1:0",
		"CREDPROXY_FORWARD_ADDR":                "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":                  "127.0.0.1:0",
		"SSL_CERT_FILE":                         certFile,
	})
	addrs := p.listeners(t, 5)
	waitReady(t, addrs["admin"])

	caPEM := get(t, "http://"+addrs["admin"]+"/ca.pem")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	pool.AddCert(other.Certificate())
	fu, _ := url.Parse("http://" + addrs["forward"])
	fwd := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(fu), TLSClientConfig: &tls.Config{RootCAs: pool}}}

	call := func(c *http.Client, u string) int {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// only asserts that the last request e saw carried exactly the
	// expected credential header and not the other one.
	only := func(e *demo.Echo, want, notWant string) {
		t.Helper()
		h := e.LastHeader()
		if h.Get(want) == "" || h.Get(notWant) != "" {
			t.Errorf("headers seen: %s=%q %s=%q", want, h.Get(want), notWant, h.Get(notWant))
		}
	}
	for _, mode := range []string{"reverse", "forward"} {
		urls := map[string]string{
			"wavefront": "http://" + addrs["route wavefront"] + "/api/v2/source",
			"splunk":    "http://" + addrs["route splunk"] + "/v2/detector",
			"ingest":    "http://" + addrs["route ingest"] + "/v2/datapoint",
		}
		c := http.DefaultClient
		if mode == "forward" {
			urls = map[string]string{"wavefront": wf.URL + "/api/v2/source", "splunk": sfxAPI.URL + "/v2/detector", "ingest": ingest.URL + "/v2/datapoint"}
			c = fwd
		}
		if s := call(c, urls["wavefront"]); s != 200 {
			t.Errorf("%s wavefront: %d", mode, s)
		}
		only(wfEcho, "Authorization", "X-Sf-Token")
		if s := call(c, urls["splunk"]); s != 200 {
			t.Errorf("%s splunk: %d", mode, s)
		}
		only(sfxEcho, "X-Sf-Token", "Authorization")
		if s := call(c, urls["ingest"]); s != 200 {
			t.Errorf("%s ingest: %d", mode, s)
		}
		only(ingestEcho, "X-Sf-Token", "Authorization")
	}
	// HOSTS: the stream host gets the ingest route's org token in forward mode.
	if s := call(fwd, stream.URL+"/v2/signalflow"); s != 200 {
		t.Errorf("stream host through HOSTS: %d", s)
	}
	// A host of no route is tunnelled without any credential.
	if s := call(fwd, other.URL+"/x"); s != 200 {
		t.Errorf("other host: %d", s)
	}
	if h := <-otherSeen; h.Get("Authorization") != "" || h.Get("X-Sf-Token") != "" {
		t.Errorf("a credential reached a host of no route: %v", h)
	}

	session := sfxEcho.LastHeader().Get("X-Sf-Token")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if deleted := splunk.Deleted(); len(deleted) != 1 || deleted[0] != session || splunk.Live() != 0 {
		t.Errorf("sessions ended at shutdown: %d, live %d", len(deleted), splunk.Live())
	}
	logtest.AssertNoSecrets(t, "logs", p.stderr.String(), cspSecret, sfxPass, orgToken, session,
		strings.TrimPrefix(wfEcho.LastHeader().Get("Authorization"), "Bearer "))
}
