package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const gateClientKey = "e2egate-Qx7Zk9Pw-4f5e6d7c8b"

// TestGateEndToEnd: the real server with CLIENT_KEYS_FILE, ALLOW and the
// audit log on: unmodified clients (Go, curl, Python requests) with the
// key as their token reach the upstream, which sees the real credential;
// no key, a wrong key and a denied path go nowhere; the audit log has a
// line per decision and holds no key or token.
func TestGateEndToEnd(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("ci:"+gateClientKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.log")
	r := startFaultRig(t, map[string]string{
		"CREDPROXY_CLIENT_KEYS_FILE": keys,
		"CREDPROXY_ALLOW":            "GET /api/**",
		"CREDPROXY_AUDIT_LOG":        auditPath,
	})
	r.h.Secret(gateClientKey)
	do := func(path, auth string) int {
		req, _ := http.NewRequest("GET", "http://"+r.proxy+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r.h.Add(path, string(b))
		return resp.StatusCode
	}
	if st := do("/api/x", ""); st != 401 {
		t.Errorf("no key: %d", st)
	}
	if st := do("/api/x", "Bearer wrong-key-0123456789abc"); st != 401 {
		t.Errorf("wrong key: %d", st)
	}
	if st := do("/api/x?token=abc", "Bearer "+gateClientKey); st != 200 {
		t.Errorf("Go net/http with the key: %d", st)
	}
	if st := do("/other", "Bearer "+gateClientKey); st != 403 {
		t.Errorf("denied path: %d", st)
	}
	if st := do("/api/%2e%2e/other", "Bearer "+gateClientKey); st != 403 {
		t.Errorf("encoded dot segment: %d", st)
	}
	out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+gateClientKey, "http://"+r.proxy+"/api/curl").Output()
	if err != nil || string(out) != "200" {
		t.Errorf("curl with the key: %q %v", out, err)
	}
	py := "import requests,sys; print(requests.get(sys.argv[1], headers={'Authorization': 'Bearer '+sys.argv[2]}).status_code)"
	out, err = exec.Command("python3", "-c", py, "http://"+r.proxy+"/api/python", gateClientKey).Output()
	if err != nil || strings.TrimSpace(string(out)) != "200" {
		t.Errorf("python requests with the key: %q %v", out, err)
	}
	// A web page's request: refused by the browser guard, recorded too.
	req, _ := http.NewRequest("GET", "http://"+r.proxy+"/api/page", nil)
	req.Header.Set("Authorization", "Bearer "+gateClientKey)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a web page's request: %d", resp.StatusCode)
	}
	want := []string{"client_key_required", "client_key_required", "allowed", "denied_by_policy", "denied_by_policy", "allowed", "allowed", "browser_request_refused"}
	var lines []map[string]any
	r.eventually("audit lines", 5*time.Second, func() bool {
		lines = readAudit(t, auditPath)
		return len(lines) >= len(want)
	})
	for i, d := range want {
		if lines[i]["decision"] != d || lines[i]["via"] != "reverse" || lines[i]["route"] != "default" {
			t.Errorf("audit line %d: %v, want decision %s", i, lines[i], d)
		}
	}
	if lines[2]["key"] != "ci" || lines[2]["path"] != "/api/x?token=" || lines[2]["status"] != float64(200) || lines[2]["token"] == nil {
		t.Errorf("allowed line: %v", lines[2])
	}
	fi, _ := os.Stat(auditPath)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(auditPath)
	r.h.Add("audit log", string(b))
	if strings.Contains(string(b), gateClientKey) || strings.Contains(string(b), faultAPIToken) {
		t.Error("the audit log holds a key or the API token")
	}
}

func readAudit(t *testing.T, path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []map[string]any
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}
