package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// idpSecret is the client secret credproxy holds for the fake issuer.
const idpSecret = "idp-cl1ent-s3cret-4e2a"

// oauth2Fakes starts a fake OAuth 2.0 issuer of tokens living ttl and a
// TLS echo API accepting them, and writes their certificate (httptest's
// one for every TLS server) to a file for SSL_CERT_FILE. env is a route
// of credproxy to them, reverse and admin listeners on loopback, plus
// the name, value pairs of more.
func oauth2Fakes(t *testing.T, ttl time.Duration, more ...string) (idp *demo.OAuth2, env map[string]string) {
	t.Helper()
	idp = demo.NewOAuth2(demo.OAuth2Options{ClientID: "svc", ClientSecret: idpSecret, TTL: ttl})
	idpSrv := httptest.NewTLSServer(idp)
	t.Cleanup(idpSrv.Close)
	echoSrv := httptest.NewTLSServer(demo.NewEcho(idp.Valid, demo.EchoOptions{}))
	t.Cleanup(echoSrv.Close)
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: echoSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{
		"CREDPROXY_AUTH":          "oauth2-client-credentials",
		"CREDPROXY_TOKEN_URL":     idpSrv.URL + "/oauth2/token",
		"CREDPROXY_CLIENT_ID":     "svc",
		"CREDPROXY_CLIENT_SECRET": idpSecret,
		"CREDPROXY_UPSTREAM":      echoSrv.URL,
		"CREDPROXY_LISTEN":        "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":    "127.0.0.1:0",
		"SSL_CERT_FILE":           certFile,
	}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	return idp, env
}

// curl runs curl with args (never through a proxy from the environment)
// and returns the response body and, from -w, the status code.
func curl(t *testing.T, args ...string) (body string, status int) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--noproxy", "*", "-w", "\n%{http_code}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, _ := strconv.Atoi(s[i+1:])
	return s[:i], code
}

// metricValue reads one sample of /metrics text, -1 when absent.
func metricValue(metrics, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestLocalOAuth2EndpointWithCurl: with CREDPROXY_TOKEN_API=true and a
// LOCAL_CLIENT_SECRET_FILE, `curl -u default:SECRET -d
// grant_type=client_credentials` gets the route's current token from the
// built binary as RFC 6749 JSON, with expires_in counting to the end of
// the expiry margin; a wrong secret gets 401 invalid_client with a Basic
// challenge; Go's client credentials flow works with the secret in the
// body; credproxy's own forward proxy does not reach the endpoint; the
// requests are counted; no secret or token is logged.
func TestLocalOAuth2EndpointWithCurl(t *testing.T) {
	// Characters that RFC 6749's form-encoding of Basic changes: curl -u
	// sends them raw, golang.org/x/oauth2 encoded.
	const local = "loc+al/sec=ret%x 9f"
	secretFile := filepath.Join(t.TempDir(), "local-secret")
	if err := os.WriteFile(secretFile, []byte(local+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	idp, env := oauth2Fakes(t, time.Hour, "CREDPROXY_TOKEN_API", "true", "CREDPROXY_LOCAL_CLIENT_SECRET_FILE", secretFile,
		"CREDPROXY_FORWARD_ADDR", "127.0.0.1:0")
	p := start(t, env)
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	tokenURL := "http://" + addrs["admin"] + "/oauth2/token"

	headers := filepath.Join(t.TempDir(), "headers")
	body, status := curl(t, "-D", headers, "-u", "default:"+local, "-d", "grant_type=client_credentials", tokenURL)
	var answer struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || status != 200 {
		t.Fatalf("curl: %d %s (%v)", status, body, err)
	}
	// An hour's token, served until 10 s (the automatic margin) before
	// its expiry.
	if !idp.Valid(answer.AccessToken) || answer.TokenType != "Bearer" || answer.ExpiresIn > 3590 || answer.ExpiresIn < 3560 {
		t.Errorf("answer: valid=%v type=%q expires_in=%d", idp.Valid(answer.AccessToken), answer.TokenType, answer.ExpiresIn)
	}
	h, _ := os.ReadFile(headers)
	for _, want := range []string{"cache-control: no-store\r\n", "pragma: no-cache\r\n", "content-type: application/json\r\n"} {
		if !strings.Contains(strings.ToLower(string(h)), want) {
			t.Errorf("response headers lack %q:\n%s", want, h)
		}
	}

	body, status = curl(t, "-D", headers, "-u", "default:wrong", "-d", "grant_type=client_credentials", tokenURL)
	h, _ = os.ReadFile(headers)
	if status != 401 || !strings.Contains(body, `"error":"invalid_client"`) || !strings.Contains(string(h), `Www-Authenticate: Basic realm="credproxy"`) {
		t.Errorf("wrong secret: %d %s\n%s", status, body, h)
	}

	cc := clientcredentials.Config{ClientID: "default", ClientSecret: local, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}
	if tok, err := cc.Token(context.Background()); err != nil || tok.AccessToken != answer.AccessToken {
		t.Errorf("golang.org/x/oauth2, secret in the body: %v", err)
	}

	proxy := "http://" + addrs["forward"]
	for _, args := range [][]string{{"-x", proxy}, {"-x", proxy, "--proxytunnel"}} {
		out, _ := exec.Command("curl", append([]string{"-sS", "-w", "\n%{http_code}", "-u", "default:" + local, "-d", "grant_type=client_credentials", tokenURL}, args...)...).CombinedOutput()
		if strings.Contains(string(out), "access_token") || strings.HasSuffix(string(out), "\n200") {
			t.Errorf("through credproxy's own forward proxy (%v): %s", args, out)
		}
	}

	metrics := get(t, "http://"+addrs["admin"]+"/metrics")
	for series, want := range map[string]float64{
		`credproxy_oauth2_token_requests_total{result="ok",route="default"}`:             2,
		`credproxy_oauth2_token_requests_total{result="invalid_client",route="default"}`: 1,
	} {
		if got := metricValue(metrics, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	logtest.AssertNoSecrets(t, "logs and metrics", p.stderr.String()+metrics, local, answer.AccessToken, idpSecret)
}

// sinkReader polls path every 2 ms until stop is closed, and reports on
// done what it saw: the distinct tokens, or the first problem (a read
// that is empty, not a token the issuer issued, or missing once the file
// existed).
func sinkReader(path string, issued func(string) bool, stop <-chan struct{}, done chan<- sinkReport) {
	r := sinkReport{tokens: map[string]bool{}}
	defer func() { done <- r }()
	for {
		select {
		case <-stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && len(r.tokens) == 0:
		case err != nil:
			r.problem = fmt.Sprintf("read %d: %v", r.reads, err)
			return
		case len(b) == 0:
			r.problem = fmt.Sprintf("read %d: an empty file", r.reads)
			return
		case !issued(string(b)):
			r.problem = fmt.Sprintf("read %d: %d bytes that are no token the issuer issued", r.reads, len(b))
			return
		default:
			r.tokens[string(b)] = true
		}
		r.reads++
	}
}

type sinkReport struct {
	tokens  map[string]bool
	reads   int
	problem string
}

// TestTokenSinkThroughRenewals: with 2-second tokens, a reader polling
// TOKEN_SINK_FILE every 2 ms through several renewals of the built binary
// sees only whole tokens the issuer issued, never an empty or partial
// file; the file has TOKEN_SINK_MODE; SIGTERM removes it.
func TestTokenSinkThroughRenewals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	idp, env := oauth2Fakes(t, 2*time.Second, "CREDPROXY_TOKEN_SINK_FILE", path, "CREDPROXY_TOKEN_SINK_MODE", "0640")
	stop, done := make(chan struct{}), make(chan sinkReport, 1)
	go sinkReader(path, idp.Issued, stop, done)
	p := start(t, env)
	addrs := p.listeners(t, 2)
	waitReady(t, addrs["admin"])
	// About one renewal every 1.3 s: six tokens take some 7 s.
	for deadline := time.Now().Add(30 * time.Second); len(idp.Requests()) < 6 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the last token's write
	close(stop)
	r := <-done
	if r.problem != "" {
		t.Fatal(r.problem)
	}
	if len(r.tokens) < 4 {
		t.Errorf("the reader saw %d tokens in %d reads through %d exchanges: too few renewals", len(r.tokens), r.reads, len(idp.Requests()))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("sink file: %v (%v), want mode 0640", fi.Mode().Perm(), err)
	}
	if body := get(t, "http://"+addrs["route default"]+"/api/v2/x"); !strings.Contains(body, `"authorized":true`) {
		t.Errorf("proxy answered %s", body)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sink file after shutdown: %v, want it removed", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in the sink's directory: %v", left)
	}
	logs := p.stderr.String()
	for tok := range r.tokens {
		logtest.AssertNoSecrets(t, "logs", logs, tok)
	}
}

// TestTokenSinkWriteFailureKeepsServing: when the sink file cannot be
// written (a directory put in its place), the binary logs the failure as
// an error without the token, counts it, and keeps serving with renewed
// tokens; once the path is free again the token is written.
func TestTokenSinkWriteFailureKeepsServing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	idp, env := oauth2Fakes(t, 2*time.Second, "CREDPROXY_TOKEN_SINK_FILE", path)
	p := start(t, env)
	addrs := p.listeners(t, 2)
	waitReady(t, addrs["admin"])
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
		}
	}
	read := func() string { b, _ := os.ReadFile(path); return string(b) }
	eventually("the first token is written", func() bool { return idp.Issued(read()) })
	first := read()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	errSeries := `credproxy_token_sink_writes_total{result="error",route="default"}`
	eventually("a failed write is counted", func() bool { return metricValue(get(t, "http://"+addrs["admin"]+"/metrics"), errSeries) >= 1 })
	exchanges := len(idp.Requests())
	eventually("two more renewals", func() bool { return len(idp.Requests()) >= exchanges+2 })
	for range 3 {
		if body := get(t, "http://"+addrs["route default"]+"/api/v2/x"); !strings.Contains(body, `"authorized":true`) {
			t.Errorf("proxy answered %s while the sink fails", body)
		}
	}
	if code := getStatus(t, "http://"+addrs["admin"]+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d while the sink fails", code)
	}
	logs := p.stderr.String()
	if !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "token sink: write failed") {
		t.Errorf("the failed write is not logged as an error")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually("a newer token is written", func() bool { tok := read(); return tok != first && idp.Issued(tok) })
	if ok := metricValue(get(t, "http://"+addrs["admin"]+"/metrics"), `credproxy_token_sink_writes_total{result="ok",route="default"}`); ok < 2 {
		t.Errorf("successful writes counted %v, want at least 2", ok)
	}
	logtest.AssertNoSecrets(t, "logs", p.stderr.String(), first, read(), idpSecret)
}

func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTokenSinkPathProblemsAreConfigErrors: a TOKEN_SINK_FILE whose
// directory is missing, or that is a directory, stops `run` and `check`
// with exit code 2 and a line naming the variable, before any exchange.
func TestTokenSinkPathProblemsAreConfigErrors(t *testing.T) {
	dir := t.TempDir()
	idp, env := oauth2Fakes(t, time.Hour)
	for _, tc := range []struct{ path, msg string }{
		{filepath.Join(dir, "missing", "token"), "CREDPROXY_TOKEN_SINK_FILE: directory " + filepath.Join(dir, "missing") + " does not exist"},
		{dir, "CREDPROXY_TOKEN_SINK_FILE: " + dir + " is a directory"},
	} {
		env["CREDPROXY_TOKEN_SINK_FILE"] = tc.path
		for _, cmd := range []string{"run", "check"} {
			code, _, stderr := runBinary(t, env, cmd)
			if code != 2 || !strings.Contains(stderr, tc.msg) {
				t.Errorf("%s with TOKEN_SINK_FILE=%s: exit %d, stderr %s; want 2 and %q", cmd, tc.path, code, stderr, tc.msg)
			}
		}
	}
	if n := len(idp.Requests()); n != 0 {
		t.Errorf("%d exchanges before the configuration was refused", n)
	}
}
