package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoLifecycle runs `credproxy demo` as a newcomer would: the status
// data shows the demo API token expiring in about 20 days, and the printed
// outage command, pasted into a shell, breaks the identity service: the
// old token is served through the outage, requests then fail closed with
// 503, and the printed command that ends the outage brings the route back
// without a restart.
func TestDemoLifecycle(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required (CI installs it)")
	}
	p := start(t, map[string]string{"CREDPROXY_LISTEN": "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR": "127.0.0.1:0", "CREDPROXY_LOG_FORMAT": "json"}, "demo")
	addrs := p.listeners(t, 2)
	proxyURL, admin := "http://"+addrs["route default"]+"/api/v2/source", addrs["admin"]
	waitReady(t, admin)

	// The API token's own expiry, from the fake CSP's details endpoint.
	var r readyRoute
	for deadline := time.Now().Add(15 * time.Second); r.CredentialExpiresAt.IsZero(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status.json never showed the API token's expiry:\n%s", get(t, "http://"+admin+"/status.json"))
		}
		r = routesOf(t, "/status.json", get(t, "http://"+admin+"/status.json"))[0]
	}
	if left := time.Until(r.CredentialExpiresAt); r.Source != "lookup" || left < 20*24*time.Hour || left > 21*24*time.Hour {
		t.Errorf("credential expires in %v (from %q), want about 20 days from the lookup", left, r.Source)
	}

	// The commands the demo prints.
	var post, del string
	postRE := regexp.MustCompile(`(?m)^  (curl -s -X POST 'http://127\.0\.0\.1:\d+/demo/outage\?seconds=60')$`)
	delRE := regexp.MustCompile(`(?m)^  (curl -s -X DELETE http://127\.0\.0\.1:\d+/demo/outage)$`)
	for deadline := time.Now().Add(5 * time.Second); post == "" || del == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not print the outage commands:\n%s", p.stdout)
		}
		if m := postRE.FindStringSubmatch(p.stdout.String()); m != nil {
			post = m[1]
		}
		if m := delRE.FindStringSubmatch(p.stdout.String()); m != nil {
			del = m[1]
		}
	}
	out, err := exec.Command("sh", "-c", post).Output()
	var answer struct {
		OutageUntil time.Time `json:"outage_until"`
	}
	if err != nil || json.Unmarshal(out, &answer) != nil || time.Until(answer.OutageUntil) < 50*time.Second {
		t.Fatalf("%s: %s (%v)", post, out, err)
	}

	// Through the outage: the old token until it expires, then 503.
	call := func() (int, string) {
		resp, err := http.Get(proxyURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	served := 0
	for deadline := time.Now().Add(demoTTL + 15*time.Second); ; time.Sleep(250 * time.Millisecond) {
		code, body := call()
		if code == 503 {
			if !strings.Contains(body, `"error":"credential_unavailable"`) {
				t.Errorf("503 body %s", body)
			}
			break
		}
		if code != 200 || !strings.Contains(body, `"authorized":true`) {
			t.Fatalf("during the outage: %d %s", code, body)
		}
		served++
		if time.Now().After(deadline) {
			t.Fatal("still served after the token must have expired")
		}
	}
	if served == 0 {
		t.Error("the old token was not served at the start of the outage")
	}
	if !strings.Contains(p.stderr.String(), `"msg":"exchange failed"`) {
		t.Error("the failed renewals are not logged")
	}

	// The outage ends: credproxy recovers by itself.
	if out, err := exec.Command("sh", "-c", del).Output(); err != nil || string(out) != `{"outage_until":null}` {
		t.Fatalf("%s: %s (%v)", del, out, err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if code, _ := call(); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("credproxy did not recover after the outage")
		}
	}
	p.alive(t, "the outage")
}
