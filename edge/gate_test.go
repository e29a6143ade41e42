package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/internal/reqinfo"
	"github.com/credproxy/credproxy/internal/secret"
)

const (
	gateKeyA = "aaaaaaaaaaaaaaaaaaaaaaaa"
	gateKeyB = "bbbbbbbbbbbbbbbbbbbbbbbb"
)

// gateNext is the handler behind a gate under test: it counts the
// requests that reached it and remembers what it saw.
type gateNext struct {
	calls    atomic.Int32
	header   string
	identity string
}

func (n *gateNext) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.calls.Add(1)
	n.header = r.Header.Get("Authorization")
	if info := reqinfo.From(r.Context()); info != nil {
		n.identity = info.Identity
		info.Token = secret.New("real-upstream-token-0123456789")
	}
	_, _ = w.Write([]byte("hello"))
}

func writeKeys(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func serveGate(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestGateClientKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	writeKeys(t, file, "ci:"+gateKeyA+"\n")
	now := time.Unix(1000, 0)
	keys, err := NewKeys(KeysOptions{File: file, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	next := &gateNext{}
	h := NewGate(GateOptions{Route: "r", Via: ViaReverse, Keys: keys, Header: "Authorization", Prefix: "Bearer"}).Wrap(next)

	for _, auth := range []string{"", "Bearer wrong-wrong-wrong-wrong", "Basic " + gateKeyA, gateKeyA} {
		r := httptest.NewRequest("GET", "/v2/x", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := serveGate(h, r)
		if w.Code != 401 || !strings.Contains(w.Body.String(), `"client_key_required"`) || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("Authorization %q: %d %s %q", auth, w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
		}
		if strings.Contains(w.Body.String(), gateKeyA) {
			t.Errorf("the body quotes the key: %s", w.Body)
		}
	}
	if n := next.calls.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the proxy", n)
	}

	r := httptest.NewRequest("GET", "/v2/x", nil)
	r.Header.Set("Authorization", "Bearer "+gateKeyA)
	if w := serveGate(h, r); w.Code != 200 {
		t.Fatalf("right key: %d %s", w.Code, w.Body)
	}
	if next.header != "" || next.identity != "key:ci" {
		t.Errorf("behind the gate: Authorization %q identity %q; want none and key:ci", next.header, next.identity)
	}

	// Rotation: the file rewritten, the old key refused after the check
	// interval.
	writeKeys(t, file, "ci2:"+gateKeyB+"\n# rotated, longer\n")
	now = now.Add(1100 * time.Millisecond)
	r = httptest.NewRequest("GET", "/v2/x", nil)
	r.Header.Set("Authorization", "Bearer "+gateKeyA)
	if w := serveGate(h, r); w.Code != 401 {
		t.Errorf("old key after rotation: %d", w.Code)
	}
	r = httptest.NewRequest("GET", "/v2/x", nil)
	r.Header.Set("Authorization", "Bearer "+gateKeyB)
	if w := serveGate(h, r); w.Code != 200 || next.identity != "key:ci2" {
		t.Errorf("new key after rotation: %d, identity %q", w.Code, next.identity)
	}
}

func TestGateHeaderWithoutPrefix(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, file, gateKeyA+"\n")
	keys, err := NewKeys(KeysOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	next := &gateNext{}
	h := NewGate(GateOptions{Route: "sfx", Keys: keys, Header: "X-Sf-Token"}).Wrap(next)
	r := httptest.NewRequest("POST", "/v2/datapoint", nil)
	r.Header.Set("X-Sf-Token", gateKeyA)
	if w := serveGate(h, r); w.Code != 200 || next.identity != "key:key1" {
		t.Fatalf("%d %s identity %q", w.Code, w.Body, next.identity)
	}
	if r.Header.Get("X-Sf-Token") != "" {
		t.Error("the key was not stripped")
	}
	r = httptest.NewRequest("POST", "/v2/datapoint", nil)
	w := serveGate(h, r)
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("no key: %d, WWW-Authenticate %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

func TestGatePolicy(t *testing.T) {
	p, err := ParsePolicy("GET /v2/**, POST /v2/datapoint")
	if err != nil {
		t.Fatal(err)
	}
	next := &gateNext{}
	h := NewGate(GateOptions{Route: "r", Policy: p}).Wrap(next)
	for _, c := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/v2/a/b?secret=1", 200},
		{"POST", "/v2/datapoint", 200},
		{"POST", "/v2/other", 403},
		{"DELETE", "/v2/a", 403},
		{"GET", "/v2/%2e%2e/admin", 403},
		{"GET", "/v2/a%2Fb", 403},
		{"GET", "/v2/..%2fadmin", 403},
		{"GET", "//v3/x", 403},
		{"GET", "/v3/x?q=/v2/", 403},
	} {
		before := next.calls.Load()
		r := httptest.NewRequest(c.method, "http://h"+c.target, nil)
		w := serveGate(h, r)
		if w.Code != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.target, w.Code, w.Body, c.want)
		}
		if c.want == 403 {
			if next.calls.Load() != before {
				t.Errorf("%s %s reached the proxy", c.method, c.target)
			}
			if !strings.Contains(w.Body.String(), "denied_by_policy: "+c.method+" ") || strings.Contains(w.Body.String(), "q=") {
				t.Errorf("%s %s: body %s", c.method, c.target, w.Body)
			}
		}
	}
}

func TestGatePeer(t *testing.T) {
	next := &gateNext{}
	h := NewGate(GateOptions{Route: "r", Allow: listen.Allow{UIDs: []int{1000}}}).Wrap(next)
	withPeer := func(p listen.Peer) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		// listen.ConnContext on a listen.Conn is how servers set it.
		return r.WithContext(peerContext(r.Context(), p))
	}
	if w := serveGate(h, httptest.NewRequest("GET", "/", nil)); w.Code != 403 || !strings.Contains(w.Body.String(), "caller_not_allowed") {
		t.Errorf("TCP caller: %d %s", w.Code, w.Body)
	}
	if w := serveGate(h, withPeer(listen.Peer{UID: 1001, GID: 1001, Known: true})); w.Code != 403 {
		t.Errorf("uid 1001: %d", w.Code)
	}
	if w := serveGate(h, withPeer(listen.Peer{UID: 1000, GID: 1000, PID: 7, Known: true})); w.Code != 200 || next.identity != "uid:1000" {
		t.Errorf("uid 1000: %d, identity %q", w.Code, next.identity)
	}
	if next.calls.Load() != 1 {
		t.Errorf("%d requests reached the proxy, want 1", next.calls.Load())
	}
}

func TestGateAudit(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	writeKeys(t, file, "ci:"+gateKeyA+"\n")
	keys, err := NewKeys(KeysOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ParsePolicy("GET /ok")
	logPath := filepath.Join(dir, "audit.log")
	a, err := NewAuditor(AuditOptions{Target: AuditTarget{Kind: AuditFile, Path: logPath}})
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	h := NewGate(GateOptions{Route: "r", Via: ViaReverse, Keys: keys, Header: "Authorization", Prefix: "Bearer", Policy: p, Auditor: a}).Wrap(&gateNext{})
	for _, target := range []string{"/ok?token=hidden-value", "/no"} {
		r := httptest.NewRequest("GET", target, nil)
		r.Header.Set("Authorization", "Bearer "+gateKeyA)
		serveGate(h, r)
	}
	serveGate(h, httptest.NewRequest("GET", "/ok", nil))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(logPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit log: %v %v", fi, err)
	}
	f, _ := os.Open(logPath)
	defer f.Close()
	var lines []map[string]any
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	want := []struct{ decision, path, key string }{{"allowed", "/ok?token=", "ci"}, {"denied_by_policy", "/no", "ci"}, {"client_key_required", "/ok", ""}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		if l["decision"] != w.decision || l["path"] != w.path || l["route"] != "r" || l["via"] != "reverse" || l["method"] != "GET" {
			t.Errorf("line %d: %v", i, l)
		}
		if w.key != "" && l["key"] != w.key {
			t.Errorf("line %d key: %v", i, l)
		}
	}
	if lines[0]["status"] != float64(200) || lines[0]["bytes_out"] != float64(5) || lines[0]["token"] == nil || lines[0]["token"] == "" {
		t.Errorf("allowed line: %v", lines[0])
	}
	b, _ := os.ReadFile(logPath)
	for _, s := range []string{gateKeyA, "hidden-value", "real-upstream-token-0123456789"} {
		if strings.Contains(string(b), s) {
			t.Errorf("the audit log holds %q", s)
		}
	}
}

// TestGateAuditCredentialUnavailable: a request the proxy answers 503
// without sending a token is recorded as credential_unavailable.
func TestGateAuditCredentialUnavailable(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "audit.log")
	a, err := NewAuditor(AuditOptions{Target: AuditTarget{Kind: AuditFile, Path: logPath}})
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	h := NewGate(GateOptions{Route: "r", Via: ViaForward, Auditor: a}).Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	serveGate(h, httptest.NewRequest("GET", "/x", nil))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), `"decision":"credential_unavailable"`) || !strings.Contains(string(b), `"via":"forward"`) {
		t.Errorf("audit line: %s", b)
	}
}

func TestGateEnabled(t *testing.T) {
	if NewGate(GateOptions{Route: "r"}).Enabled() {
		t.Error("a gate with nothing on is enabled")
	}
	off, _ := NewAuditor(AuditOptions{})
	if NewGate(GateOptions{Route: "r", Auditor: off}).Enabled() {
		t.Error("a gate with the audit off is enabled")
	}
}

// peerContext is what listen.ConnContext gives a request on a unix
// socket whose caller is p.
func peerContext(ctx context.Context, p listen.Peer) context.Context {
	return listen.ConnContext(ctx, &listen.Conn{Peer: p})
}
