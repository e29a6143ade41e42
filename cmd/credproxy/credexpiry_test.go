package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// expiryAPIToken is the CSP API token of these tests; the fake's details
// answer carries it whole and its 404 echoes a piece of it.
const expiryAPIToken = "expT3st-Ap1-T0k3n-5e6f7a8b9c0d"

// readyRoute is the part of a /readyz or /status.json route these tests
// read.
type readyRoute struct {
	Route               string    `json:"route"`
	Ready               bool      `json:"ready"`
	CredentialExpiresAt time.Time `json:"credential_expires_at"`
	Source              string    `json:"credential_expiry_source"`
}

func routesOf(t *testing.T, what, body string) []readyRoute {
	t.Helper()
	var v struct{ Routes []readyRoute }
	if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Routes) == 0 {
		t.Fatalf("%s: %s (%v)", what, body, err)
	}
	return v.Routes
}

// waitLog waits up to 15 s for stderr to hold want.
func (p *proc) waitLog(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(p.stderr.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %s", want)
		}
	}
}

// TestCredentialExpiryInTheBinary: a csp-api-token route learns its API
// token's expiry from CSP at start and shows it where an operator looks:
// /readyz, /status.json, the gauge, and one warning log line with 5 days
// left; no piece of the API token, which CSP's answer carries, shows.
func TestCredentialExpiryInTheBinary(t *testing.T) {
	expires := time.Now().Add(5*24*time.Hour + time.Hour).Truncate(time.Second).UTC()
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: expiryAPIToken, APITokenExpiresAt: expires, TTL: time.Hour})
	p := start(t, cspEnv(cspURL, expiryAPIToken, echoURL, certFile, "CREDPROXY_LISTEN", "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR", "127.0.0.1:0"))
	admin := p.listeners(t, 2)["admin"]
	waitReady(t, admin)
	p.waitLog(t, `"threshold":"7d"`)

	ready := get(t, "http://"+admin+"/readyz")
	status := get(t, "http://"+admin+"/status.json")
	for what, body := range map[string]string{"/readyz": ready, "/status.json": status} {
		r := routesOf(t, what, body)[0]
		if !r.CredentialExpiresAt.Equal(expires) || r.Source != "lookup" {
			t.Errorf("%s: credential %v from %q, want %v from the lookup", what, r.CredentialExpiresAt, r.Source, expires)
		}
	}
	metrics := get(t, "http://"+admin+"/metrics")
	if want := fmt.Sprintf(`credproxy_credential_expiry_timestamp_seconds{route="default"} %g`, float64(expires.Unix())); !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	logs := p.stderr.String()
	warn := regexp.MustCompile(`(?m)^.*"level":"warn".*"msg":"the route's long-lived credential expires soon: rotate it before then".*$`).FindAllString(logs, -1)
	if len(warn) != 1 || !strings.Contains(warn[0], `"route":"default"`) || !strings.Contains(warn[0], `"days_left":5`) ||
		!strings.Contains(warn[0], `"expires_at":"`+expires.Format("2006-01-02T15:04:05")) {
		t.Errorf("want one 7-day warning naming the route, the days left and the date; got %q", warn)
	}
	logtest.AssertNoSecrets(t, "logs, /readyz, /status.json, /metrics", logs+ready+status+metrics, expiryAPIToken)
}

// TestCredentialExpiryLookupFailsQuietly: a details endpoint that fails
// (here a 500 echoing the token) costs a debug line: the route is ready
// and serves, and no credential expiry is shown. A configured date in the
// past is still reported, by an error line, without touching readiness.
func TestCredentialExpiryLookupFailsQuietly(t *testing.T) {
	csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: expiryAPIToken, TTL: time.Hour})
	csp.SetDetailsFault(demo.Fault{Status: 500, Body: `{"statusCode":500,"message":"no details for ` + expiryAPIToken + `"}`})
	env := cspEnv(cspURL, expiryAPIToken, echoURL, certFile, "CREDPROXY_LISTEN", "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR", "127.0.0.1:0", "CREDPROXY_LOG_LEVEL", "debug")
	p := start(t, env)
	addrs := p.listeners(t, 2)
	waitReady(t, addrs["admin"])
	p.waitLog(t, `"msg":"credential expiry lookup failed; serving is not affected"`)
	if body := get(t, "http://"+addrs["route default"]+"/api/v2/source"); !strings.Contains(body, `"authorized":true`) {
		t.Errorf("the route does not serve: %s", body)
	}
	ready := get(t, "http://"+addrs["admin"]+"/readyz")
	if strings.Contains(ready, "credential_expires_at") {
		t.Errorf("/readyz shows an expiry no one knows:\n%s", ready)
	}
	if strings.Contains(p.stderr.String(), `"level":"warn"`) || strings.Contains(p.stderr.String(), `"level":"error"`) {
		t.Errorf("a failed lookup logged above debug:\n%s", p.stderr)
	}
	logtest.AssertNoSecrets(t, "logs and /readyz", p.stderr.String()+ready, expiryAPIToken)

	// A date in the past, configured: an error, once; still ready.
	past := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	env["CREDPROXY_CREDENTIAL_EXPIRES_AT"] = past.Format(time.RFC3339)
	env["CREDPROXY_LOG_LEVEL"] = "info"
	p2 := start(t, env)
	admin := p2.listeners(t, 2)["admin"]
	waitReady(t, admin)
	p2.waitLog(t, `"msg":"the route's long-lived credential has expired`)
	r := routesOf(t, "/readyz", get(t, "http://"+admin+"/readyz"))[0]
	if !r.Ready || !r.CredentialExpiresAt.Equal(past) || r.Source != "config" {
		t.Errorf("/readyz route %+v, want ready with the configured %v", r, past)
	}
	if n := strings.Count(p2.stderr.String(), `"level":"error"`); n != 1 {
		t.Errorf("%d error lines, want the one about the expiry", n)
	}
}

// TestCheckReportsCredentialExpiry: `credproxy check` says when the API
// token expires and warns (3 days left, within the 7-day threshold); a
// failed lookup is said, not failed.
func TestCheckReportsCredentialExpiry(t *testing.T) {
	expires := time.Now().Add(3*24*time.Hour + 2*time.Hour).Truncate(time.Second).UTC()
	csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: expiryAPIToken, APITokenExpiresAt: expires, TTL: time.Hour})
	env := cspEnv(cspURL, expiryAPIToken, echoURL, certFile)
	code, out, errOut := runBinary(t, env, "check")
	want := "credential expires " + expires.Format(time.RFC3339) + " (in 3d 1h, from the identity service)"
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("check: exit %d, want %q in\n%s%s", code, want, out, errOut)
	}
	if !strings.Contains(errOut, "warning: route default: the long-lived credential expires in 3d 1h") {
		t.Errorf("check does not warn on stderr:\n%s", errOut)
	}
	logtest.AssertNoSecrets(t, "check output", out+errOut, expiryAPIToken)

	// The configured date wins when it is earlier; it is named.
	env["CREDPROXY_CREDENTIAL_EXPIRES_AT"] = time.Now().Add(40 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if _, out, _ := runBinary(t, env, "check"); !strings.Contains(out, want) {
		t.Errorf("a later configured date hides the lookup's:\n%s", out)
	}
	soon := time.Now().Add(26 * time.Hour).UTC().Truncate(time.Second)
	env["CREDPROXY_CREDENTIAL_EXPIRES_AT"] = soon.Format(time.RFC3339)
	if _, out, _ := runBinary(t, env, "check"); !strings.Contains(out, "credential expires "+soon.Format(time.RFC3339)+" (in 1d 1h, from CREDPROXY_CREDENTIAL_EXPIRES_AT)") {
		t.Errorf("the earlier configured date is not reported:\n%s", out)
	}
	delete(env, "CREDPROXY_CREDENTIAL_EXPIRES_AT")

	csp.SetDetailsFault(demo.Fault{Status: 404, Body: "<html>Not Found</html>", ContentType: "text/html"})
	code, out, errOut = runBinary(t, env, "check")
	if code != 0 || !strings.Contains(out, "credential expiry unknown (lookup failed: csp api-token details: HTTP 404") {
		t.Errorf("check with no details endpoint: exit %d\n%s%s", code, out, errOut)
	}
}

// TestSplunkSessionToIngestWarns: a splunk-session route whose HOSTS
// include an ingest host is warned about at start-up, in the log of run
// and on stderr of check, naming the route and the way out.
func TestSplunkSessionToIngestWarns(t *testing.T) {
	const password = "ingPa55w0rd-7a6b5c4d"
	_, _, apiURL, certFile := splunkAPI(t, "ops@example.com", password)
	env := map[string]string{
		"CREDPROXY_ROUTES":              "sfx",
		"CREDPROXY_SFX_AUTH":            "splunk-session",
		"CREDPROXY_SFX_UPSTREAM":        apiURL,
		"CREDPROXY_SFX_HOSTS":           "ingest.us1.signalfx.com,stream.us1.signalfx.com",
		"CREDPROXY_SFX_SPLUNK_EMAIL":    "ops@example.com",
		"CREDPROXY_SFX_SPLUNK_PASSWORD": password,
		"CREDPROXY_SFX_LISTEN":          "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":          "127.0.0.1:0",
		"SSL_CERT_FILE":                 certFile,
	}
	const want = "route sfx: CREDPROXY_SFX_HOSTS ingest.us1.signalfx.com is a Splunk ingest host, and a splunk-session token cannot authenticate ingest"
	code, out, errOut := runBinary(t, env, "check")
	if code != 0 || !strings.Contains(errOut, "warning: "+want) || !strings.Contains(errOut, "AUTH=static and an org access token") {
		t.Errorf("check: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(errOut, "stream.us1") {
		t.Errorf("the SignalFlow host is warned about too:\n%s", errOut)
	}
	p := start(t, env)
	waitReady(t, p.listeners(t, 2)["admin"])
	p.waitLog(t, `"level":"warn"`)
	if !strings.Contains(p.stderr.String(), want) {
		t.Errorf("run does not log the warning:\n%s", p.stderr)
	}
	logtest.AssertNoSecrets(t, "output", out+errOut+p.stderr.String(), password)
}

// TestCheckWarnsWhereTheWatcherDoes: `credproxy check` warns about a
// credential's expiry from the same threshold as a running credproxy's
// watcher: with 20 days left, run logs its 30-day warning, and check
// warns on stderr too. The upstream is the fake echo API, which check's
// upstream handshake reaches.
func TestCheckWarnsWhereTheWatcherDoes(t *testing.T) {
	expires := time.Now().Add(20 * 24 * time.Hour).UTC().Truncate(time.Second)
	_, _, _, echoURL, certFile := fakes(t, demo.CSPOptions{})
	env := map[string]string{
		"CREDPROXY_AUTH":                  "static",
		"CREDPROXY_TOKEN":                 "st4tic-t0ken-20days",
		"CREDPROXY_UPSTREAM":              echoURL,
		"SSL_CERT_FILE":                   certFile,
		"CREDPROXY_CREDENTIAL_EXPIRES_AT": expires.Format(time.RFC3339),
	}
	code, out, errOut := runBinary(t, env, "check")
	if code != 0 || !strings.Contains(out, "credential expires "+expires.Format(time.RFC3339)) {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}

	env["CREDPROXY_LISTEN"], env["CREDPROXY_ADMIN_ADDR"] = "127.0.0.1:0", "127.0.0.1:0"
	p := start(t, env)
	p.listeners(t, 2)
	p.waitLog(t, `"threshold":"30d"`)

	if !strings.Contains(errOut, "warning: route default: the long-lived credential expires in 19d 23h") {
		t.Errorf("with 20 days left the watcher warns (30d threshold) but check does not:\n%s", errOut)
	}
}
