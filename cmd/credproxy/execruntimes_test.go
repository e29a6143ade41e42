package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// TestExecNoTokenSaysWhy: when a route has no token within TOKEN_WAIT,
// exec's message says what happened: the identity service's refusal
// (its status and OAuth 2.0 error code, never its secret), or that it
// did not answer in time.
func TestExecNoTokenSaysWhy(t *testing.T) {
	const apiToken = "execWhy-5e1d-2a9c"
	tcs := []struct {
		desc  string
		fault demo.Fault
		want  string
	}{
		{desc: "refused", fault: demo.Fault{Status: 401, Body: `{"error":"invalid_client","error_description":"bad"}`}, want: "route default: no token within 2s: token exchange failed: identity service answered 401 (invalid_client)"},
		{desc: "silent", fault: demo.Fault{Delay: time.Minute}, want: "route default: no token within 2s: the identity service did not answer within 2s"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
			csp.SetFault(tc.fault)
			env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
			env["CREDPROXY_TOKEN_WAIT"] = "2s"
			code, _, errOut := runBinary(t, env, "exec", "--", "true")
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut)
			}
		})
	}
}

// otherHost starts a TLS server on 127.0.0.2 that is no route's host,
// its certificate from a CA of its own, as a public site's would be; it
// returns its URL and a "system roots" file: the tests' SSL_CERT_FILE
// (certFile) plus that CA. It answers "other host" to any request
// without a credential.
func otherHost(t *testing.T, certFile string) (url, roots string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 is not on loopback here: %v", err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other host's public CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.2")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "a credential reached a host of no route", http.StatusTeapot)
			return
		}
		_, _ = io.WriteString(w, "other host")
	}))
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pemRoots, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots = filepath.Join(t.TempDir(), "system-roots.pem")
	pemRoots = append(pemRoots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(roots, pemRoots, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL, roots
}

// pythonGet GETs sys.argv[1] with requests, then with urllib, and prints
// both bodies, one a line; both verify with their default trust
// (REQUESTS_CA_BUNDLE, SSL_CERT_FILE) and proxy from the environment.
const pythonGet = `import sys, urllib.request, requests
r = requests.get(sys.argv[1], timeout=10)
r.raise_for_status()
print(r.text)
with urllib.request.urlopen(sys.argv[1], timeout=10) as u:
    print(u.read().decode())
`

// checkPythonBoth checks pythonGet's output for a route host (the echo
// API, authorized twice) or another host.
func checkPythonBoth(t *testing.T, who, out string, route bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Errorf("%s: want two answers, got %q", who, out)
		return
	}
	for i, l := range lines {
		client := []string{"requests", "urllib"}[i]
		if !route {
			if l != "other host" {
				t.Errorf("%s, %s: got %q", who, client, l)
			}
			continue
		}
		var e struct{ Authorized bool }
		if err := json.Unmarshal([]byte(l), &e); err != nil || !e.Authorized {
			t.Errorf("%s, %s: got %q (%v)", who, client, l, err)
		}
	}
}

// TestExecPython: Python's urllib (SSL_CERT_FILE) and requests
// (REQUESTS_CA_BUNDLE) under exec verify both a route host (credproxy's
// CA) and another HTTPS host (a CA of the system roots), through the
// proxy.
func TestExecPython(t *testing.T) {
	const apiToken = "execPy-1c7e-90ab"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	other, roots := otherHost(t, certFile)
	env := withPath(execEnv(cspURL, apiToken, echoURL, roots))
	for _, tc := range []struct {
		url   string
		route bool
	}{{echoURL + "/api/v2/py", true}, {other, false}} {
		code, out, errOut := runBinary(t, env, "exec", "--", python(t), "-c", pythonGet, tc.url)
		if code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", tc.url, code, out, errOut)
		}
		checkPythonBoth(t, tc.url, out, tc.route)
	}
}

// childEnvOf runs `env` under exec with env and returns the command's
// environment.
func childEnvOf(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	code, out, errOut := runBinary(t, env, "exec", "--", "env")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, errOut)
	}
	child := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			child[k] = v
		}
	}
	return child
}

// TestExecNode: Node gets NODE_USE_ENV_PROXY=1 (its fetch and https
// honour HTTPS_PROXY from 22.21 and 24 on) and NODE_EXTRA_CA_CERTS. With
// a node on PATH, a script that opens the CONNECT itself (what Node 20,
// without NODE_USE_ENV_PROXY, can do) reaches the API with a token,
// trusting exec's CA through NODE_EXTRA_CA_CERTS alone.
func TestExecNode(t *testing.T) {
	const apiToken = "execNode-4b2f-7d10"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	child := childEnvOf(t, env)
	if child["NODE_USE_ENV_PROXY"] != "1" {
		t.Errorf("NODE_USE_ENV_PROXY = %q, want 1", child["NODE_USE_ENV_PROXY"])
	}
	if child["NODE_EXTRA_CA_CERTS"] == "" {
		t.Error("no NODE_EXTRA_CA_CERTS")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node on PATH: the environment alone was checked")
	}
	code, out, errOut := runBinary(t, env, "exec", "--", "node", "-e", nodeConnect, echoURL+"/api/v2/node")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var e struct{ Authorized bool }
	if err := json.Unmarshal([]byte(out), &e); err != nil || !e.Authorized {
		t.Errorf("node got %s (%v)", out, err)
	}
	if tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "); !csp.Valid(tok) {
		t.Error("the API saw no valid token")
	}
}

// nodeConnect GETs process.argv[1] through HTTPS_PROXY by a CONNECT of
// its own (with the proxy URL's key), trusting Node's default CAs, which
// NODE_EXTRA_CA_CERTS extends.
const nodeConnect = `
const http = require('http'), https = require('https');
const target = new URL(process.argv[1]), proxy = new URL(process.env.HTTPS_PROXY);
const auth = Buffer.from(decodeURIComponent(proxy.username) + ':' + decodeURIComponent(proxy.password)).toString('base64');
http.request({host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: target.host,
  headers: {'Proxy-Authorization': 'Basic ' + auth}}).on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.error('CONNECT', res.statusCode); process.exit(3); }
  https.get({host: target.hostname, port: target.port, path: target.pathname, socket, agent: false}, (r) => {
    r.pipe(process.stdout);
    r.on('end', () => process.exit(r.statusCode === 200 ? 0 : 4));
  }).on('error', (e) => { console.error(e.message); process.exit(5); });
}).on('error', (e) => { console.error(e.message); process.exit(6); }).end();
`

// javaPlain GETs args[0] with HttpURLConnection and no settings of its
// own: the proxy and the trust store are JAVA_TOOL_OPTIONS's. It prints
// the body, then on stderr the properties named by the other arguments.
const javaPlain = `import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;

public class Main {
    public static void main(String[] args) throws Exception {
        for (int i = 1; i < args.length; i++) {
            System.err.println("prop " + args[i] + "=" + System.getProperty(args[i]));
        }
        HttpURLConnection c = (HttpURLConnection) new URL(args[0]).openConnection();
        c.setConnectTimeout(20000);
        c.setReadTimeout(30000);
        int code = c.getResponseCode();
        InputStream in = code < 400 ? c.getInputStream() : c.getErrorStream();
        System.out.write(in.readAllBytes());
        System.out.flush();
        if (code != 200) {
            System.err.println("HTTP " + code);
            System.exit(5);
        }
    }
}
`

// TestExecJavaToolOptions: a one-file Java program with no -D flags of
// its own, run by a real JVM under exec, reaches a route host with a
// valid token and another HTTPS host (a system root) through
// JAVA_TOOL_OPTIONS alone; the user's own JAVA_TOOL_OPTIONS stay, and
// win for a property exec sets too.
func TestExecJavaToolOptions(t *testing.T) {
	requireJava(t)
	const apiToken = "execJTO-2d6a-83e1"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	other, roots := otherHost(t, certFile)
	dir := t.TempDir()
	main := filepath.Join(dir, "Main.java")
	if err := os.WriteFile(main, []byte(javaPlain), 0o644); err != nil {
		t.Fatal(err)
	}
	env := withPath(execEnv(cspURL, apiToken, echoURL, roots))
	env["JAVA_TOOL_OPTIONS"] = "-Dfoo=bar -Dhttp.proxyPort=1"
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		env["JAVA_HOME"] = jh
	}
	code, out, errOut := runBinary(t, env, "exec", "--", "java", main, echoURL+"/api/v2/java", "foo", "http.proxyPort", "https.proxyHost")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var e struct{ Authorized bool }
	if err := json.Unmarshal([]byte(out), &e); err != nil || !e.Authorized {
		t.Errorf("Java got %s (%v)", out, err)
	}
	if tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "); !csp.Valid(tok) {
		t.Error("the API saw no valid token")
	}
	for _, want := range []string{"prop foo=bar", "prop http.proxyPort=1", "prop https.proxyHost=127.0.0.1"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
	code, out, errOut = runBinary(t, env, "exec", "--", "java", main, other)
	if code != 0 || out != "other host" {
		t.Errorf("other host: exit %d, %q\nstderr: %s", code, out, errOut)
	}
}

// TestCABundle: `credproxy ca bundle` writes the system roots (here the
// tests' SSL_CERT_FILE) and a running credproxy's CA (from --from, or
// CREDPROXY_CA_CERT_FILE) into one file, with which Python's requests
// and urllib, given only REQUESTS_CA_BUNDLE and SSL_CERT_FILE, reach a
// route host through the forward proxy and another HTTPS host alike.
func TestCABundle(t *testing.T) {
	const apiToken = "caBundle-8e3b-51d2"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	other, roots := otherHost(t, certFile)
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, onLoopback...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	bundle := filepath.Join(t.TempDir(), "ca-bundle.pem")
	code, out, errOut := runBinary(t, map[string]string{"SSL_CERT_FILE": roots}, "ca", "bundle", "--from", "http://"+addrs["admin"], bundle)
	if code != 0 {
		t.Fatalf("ca bundle: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, bundle) {
		t.Errorf("ca bundle does not say what it wrote: %q", out)
	}
	caPEM := get(t, "http://"+addrs["admin"]+"/ca.pem")
	rootsPEM, _ := os.ReadFile(roots)
	if got, _ := os.ReadFile(bundle); !bytes.Contains(got, rootsPEM) || !bytes.Contains(got, []byte(caPEM)) {
		t.Errorf("the bundle lacks the roots or the CA:\n%s", got)
	}
	env := map[string]string{"HTTPS_PROXY": "http://" + addrs["forward"], "REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle}
	for _, tc := range []struct {
		url   string
		route bool
	}{{echoURL + "/api/v2/py", true}, {other, false}} {
		cmd := exec.Command(python(t), "-c", pythonGet, tc.url)
		cmd.Env = envList(withPath(env))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v %s", tc.url, err, exitStderr(err))
		}
		checkPythonBoth(t, tc.url, string(out), tc.route)
	}
}

// TestCABundleFromCAFile: with CREDPROXY_CA_CERT_FILE set, ca bundle
// takes the CA from that file; a bad source fails with exit 1 and writes
// nothing.
func TestCABundleFromCAFile(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runBinary(t, nil, "ca", "init", filepath.Join(dir, "ca")); code != 0 {
		t.Fatalf("ca init: exit %d %s%s", code, out, errOut)
	}
	roots := filepath.Join(dir, "roots.pem")
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca", "ca.pem"))
	if err := os.WriteFile(roots, []byte("# the system roots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "out.pem")
	env := map[string]string{"SSL_CERT_FILE": roots, "CREDPROXY_CA_CERT_FILE": filepath.Join(dir, "ca", "ca.pem")}
	if code, out, errOut := runBinary(t, env, "ca", "bundle", bundle); code != 0 {
		t.Fatalf("ca bundle: exit %d %s%s", code, out, errOut)
	}
	if got, _ := os.ReadFile(bundle); string(got) != "# the system roots\n"+string(caPEM) {
		t.Errorf("bundle = %q", got)
	}
	bad := filepath.Join(dir, "bad.pem")
	env["CREDPROXY_CA_CERT_FILE"] = roots
	if code, _, errOut := runBinary(t, env, "ca", "bundle", bad); code != 1 || !strings.Contains(errOut, "no certificate") {
		t.Errorf("a CA file without a certificate: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a bundle was written: %v", err)
	}
	if code, _, _ := runBinary(t, env, "ca", "bundle"); code != 2 {
		t.Errorf("no OUT: exit %d, want 2", code)
	}
}

func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
