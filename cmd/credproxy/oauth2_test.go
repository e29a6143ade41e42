package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// TestOAuth2ErrorReachesLogAndReadyz: an RFC 6749 error body from the
// token endpoint shows in the log and in /readyz, without the secret.
func TestOAuth2ErrorReachesLogAndReadyz(t *testing.T) {
	idp := demo.NewOAuth2(demo.OAuth2Options{ClientID: "svc", ClientSecret: "the-right-one-77"})
	idpSrv := httptest.NewTLSServer(idp)
	defer idpSrv.Close()
	_, _, _, echoURL, certFile := fakes(t, demo.CSPOptions{})
	p := start(t, map[string]string{
		"CREDPROXY_AUTH":          "oauth2-client-credentials",
		"CREDPROXY_TOKEN_URL":     idpSrv.URL + "/oauth2/token",
		"CREDPROXY_CLIENT_ID":     "svc",
		"CREDPROXY_CLIENT_SECRET": "wr0ng-cl1ent-s3cret",
		"CREDPROXY_UPSTREAM":      echoURL,
		"CREDPROXY_LISTEN":        "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":    "127.0.0.1:0",
		"SSL_CERT_FILE":           certFile,
	})
	addrs := p.listeners(t, 2)
	var ready string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ready = get(t, "http://"+addrs["admin"]+"/readyz"); strings.Contains(ready, "invalid_client") {
			break
		}
	}
	if !strings.Contains(ready, "invalid_client: Client authentication failed") || !strings.Contains(ready, `"ready": false`) {
		t.Errorf("/readyz = %s", ready)
	}
	body := get(t, "http://"+addrs["route default"]+"/x")
	if !strings.Contains(body, `"error":"credential_unavailable"`) || !strings.Contains(body, "invalid_client") {
		t.Errorf("proxy answered %s", body)
	}
	logs := p.stderr.String()
	if !strings.Contains(logs, "Client authentication failed") || !strings.Contains(logs, `"route":"default"`) {
		t.Errorf("the log lacks the service's message")
	}
	logtest.AssertNoSecrets(t, "logs, /readyz and the 503 body", logs+ready+body, "wr0ng-cl1ent-s3cret")
}
