package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// python returns a python3 that can import requests (Debian's
// python3-requests, which CI installs), preferring /usr/bin/python3 over
// whatever else is on PATH.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import requests").Run() == nil {
			return p
		}
	}
	t.Fatal("python3 with requests is required (CI installs python3-requests)")
	return ""
}

// TestForwardProxyRealClients runs the built binary as a forward proxy and
// calls an API host through it with curl, Python requests and Go, each
// trusting the CA fetched from /ca.pem.
func TestForwardProxyRealClients(t *testing.T) {
	const apiToken = "fwdE2e-7d41-bb09-cafe"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, onLoopback...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	proxyURL := "http://" + addrs["forward"]

	caPEM := get(t, "http://"+addrs["admin"]+"/ca.pem")
	caFile := filepath.Join(t.TempDir(), "credproxy-ca.pem")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	checkEcho := func(who string, out []byte) {
		t.Helper()
		var e struct {
			Authorized bool   `json:"authorized"`
			Path       string `json:"path"`
		}
		if err := json.Unmarshal(out, &e); err != nil || !e.Authorized {
			t.Errorf("%s got %s (%v)", who, out, err)
			return
		}
		tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer ")
		if !csp.Valid(tok) {
			t.Errorf("%s: the API saw no valid token", who)
		}
	}

	// curl with the proxy and the CA.
	out, err := exec.Command("curl", "-sS", "-x", proxyURL, "--cacert", caFile, echoURL+"/api/v2/curl").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	checkEcho("curl", out)

	// curl with plain http: credproxy upgrades to https itself.
	out, err = exec.Command("curl", "-sS", "-x", proxyURL, strings.Replace(echoURL, "https://", "http://", 1)+"/api/v2/plain").CombinedOutput()
	if err != nil {
		t.Fatalf("curl plain: %v %s", err, out)
	}
	checkEcho("curl over plain http", out)

	// Python requests, configured the way a legacy script is: environment.
	py := exec.Command(python(t), "-c", `import os, requests, sys
r = requests.get(sys.argv[1], timeout=10)
r.raise_for_status()
sys.stdout.write(r.text)`, echoURL+"/api/v2/python")
	py.Env = []string{"HTTPS_PROXY=" + proxyURL, "REQUESTS_CA_BUNDLE=" + caFile, "PATH=" + os.Getenv("PATH")}
	out, err = py.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v %s", err, out)
	}
	checkEcho("python requests", out)

	// Go net/http.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	pu, _ := url.Parse(proxyURL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(echoURL + "/api/v2/go")
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	checkEcho("Go net/http", out)

	metrics := get(t, "http://"+addrs["admin"]+"/metrics")
	for _, want := range []string{`credproxy_forward_connects_total{decision="intercept"} 3`, `credproxy_leaf_certificates_signed_total 1`, `mode="forward"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	logtest.AssertNoSecrets(t, "logs", p.stderr.String()+metrics, apiToken, strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "))
}

func TestCAInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if code, out, errOut := runBinary(t, nil, "ca", "init", dir); code != 0 {
		t.Fatalf("ca init: exit %d %s%s", code, out, errOut)
	}
	st, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if code, out, _ := runBinary(t, nil, "ca", "init", dir); code == 0 {
		t.Errorf("second ca init overwrote the key: %s", out)
	}
	// The CA works as CREDPROXY_CA_CERT_FILE / _KEY_FILE.
	code, _, errOut := runBinary(t, map[string]string{
		"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": "t", "CREDPROXY_UPSTREAM": "https://api.example",
		"CREDPROXY_CA_CERT_FILE": filepath.Join(dir, "ca.pem"), "CREDPROXY_CA_KEY_FILE": "/nonexistent",
		"CREDPROXY_FORWARD_ADDR": "127.0.0.1:0", "CREDPROXY_LISTEN": "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR": "127.0.0.1:0",
	}, "run")
	if code != 1 || !strings.Contains(errOut, "CREDPROXY_CA_KEY_FILE") {
		t.Errorf("bad CA key: exit %d %s", code, errOut)
	}
}
