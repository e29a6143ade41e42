package tokenapi

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokencache"
)

// recorder collects the events the endpoints record.
type recorder struct {
	mu     sync.Mutex
	events []edge.Event
}

func (r *recorder) record(ev edge.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) take() []edge.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

const auditTestToken = "audit-TOKEN-51c2"

func auditMux(rec *recorder) *http.ServeMux {
	tok := exchange.Token{Value: secret.New(auditTestToken), Expiry: time.Now().Add(time.Hour)}
	return newMux(Options{Record: rec.record, Routes: []Route{
		{Name: "wf", TokenType: "Bearer", Tokens: &fakeTokens{tok: tok},
			ClientSecret: secret.Ref{Value: secret.New("local-SECRET-9"), Var: "CREDPROXY_WF_LOCAL_CLIENT_SECRET"}},
		{Name: "down", Tokens: &fakeTokens{err: &tokencache.UnavailableError{Route: "down", Detail: "no"}}},
	}})
}

func serveAudit(mux http.Handler, r *http.Request) int {
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w.Code
}

// TestTokenAPIAudits: every answer of the token API is one event: via
// token_api, the caller's address (and its unix peer), the status, the
// decision (allowed, or the refusal) and, when a token was handed out,
// that token (the auditor writes its fingerprint only).
func TestTokenAPIAudits(t *testing.T) {
	rec := &recorder{}
	mux := auditMux(rec)
	get := func(path string, h map[string]string) *http.Request {
		r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
		r.RemoteAddr = "127.0.0.1:40000"
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return r
	}
	md := map[string]string{"Metadata": "true"}
	ok := get("/v1/token/wf?x=1", md)
	ok = ok.WithContext(listen.ConnContext(context.Background(), &listen.Conn{Peer: listen.Peer{UID: 1000, GID: 100, PID: 7, Known: true}}))
	serveAudit(mux, ok)
	serveAudit(mux, get("/v1/token/wf", nil))
	serveAudit(mux, get("/v1/token/wf", map[string]string{"Metadata": "true", "Origin": "https://evil.example"}))
	serveAudit(mux, get("/v1/token/down", md))
	serveAudit(mux, get("/v1/token/nope", md))
	evs := rec.take()
	if len(evs) != 5 {
		t.Fatalf("%d events, want 5: %+v", len(evs), evs)
	}
	want := []struct {
		route    string
		status   int
		decision edge.Decision
		token    bool
	}{
		{"wf", 200, edge.Allowed, true},
		{"wf", 403, edge.CallerNotAllowed, false},
		{"wf", 403, edge.BrowserRequestRefused, false},
		{"down", 503, edge.CredentialUnavailable, false},
		{"", 404, "unknown_route", false},
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Via != edge.ViaTokenAPI || ev.Route != w.route || ev.Status != w.status || ev.Decision != w.decision ||
			ev.Token.Empty() == w.token || ev.Caller != "127.0.0.1:40000" || ev.Method != "GET" || ev.Time.IsZero() {
			t.Errorf("event %d = %+v, want route %q status %d decision %s token %v", i, ev, w.route, w.status, w.decision, w.token)
		}
	}
	if evs[0].Token.Reveal() != auditTestToken || evs[0].Path != "/v1/token/wf" || evs[0].Query != "x=1" {
		t.Errorf("allowed event: token %v path %q query %q", evs[0].Token, evs[0].Path, evs[0].Query)
	}
	if p := evs[0].Peer; !p.Known || p.UID != 1000 || p.GID != 100 || p.PID != 7 {
		t.Errorf("peer = %+v, want uid 1000 gid 100 pid 7", p)
	}
	if evs[1].Peer.Known {
		t.Errorf("a TCP caller has a peer: %+v", evs[1].Peer)
	}
}

// TestOAuth2Audits: every answer of /oauth2/token is one event via
// oauth2, its decision the refusal's error code when not allowed.
func TestOAuth2Audits(t *testing.T) {
	rec := &recorder{}
	mux := auditMux(rec)
	post := func(form url.Values) *http.Request {
		r := httptest.NewRequest("POST", "http://localhost"+OAuth2TokenPath, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = "[::1]:5000"
		return r
	}
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {"wf"}, "client_secret": {"local-SECRET-9"}}
	if code := serveAudit(mux, post(good)); code != 200 {
		t.Fatalf("status %d", code)
	}
	bad := url.Values{"grant_type": {"client_credentials"}, "client_id": {"wf"}, "client_secret": {"wrong"}}
	serveAudit(mux, post(bad))
	serveAudit(mux, post(url.Values{"grant_type": {"client_credentials"}, "client_id": {"down"}}))
	far := post(good)
	far.RemoteAddr = "192.0.2.1:5000"
	serveAudit(mux, far)
	evs := rec.take()
	want := []struct {
		route    string
		status   int
		decision edge.Decision
	}{
		{"wf", 200, edge.Allowed},
		{"wf", 401, "invalid_client"},
		{"down", 503, edge.CredentialUnavailable},
		{"", 403, edge.CallerNotAllowed},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(evs), len(want), evs)
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Via != edge.ViaOAuth2 || ev.Route != w.route || ev.Status != w.status || ev.Decision != w.decision ||
			ev.Method != "POST" || ev.Path != OAuth2TokenPath {
			t.Errorf("event %d = %+v, want route %q status %d decision %s", i, ev, w.route, w.status, w.decision)
		}
	}
	if evs[0].Token.Reveal() != auditTestToken || !evs[1].Token.Empty() {
		t.Errorf("tokens: %v %v", evs[0].Token, evs[1].Token)
	}
}

// TestTokenAPIsAnswerUnixSocketCallers: a caller on a unix socket (the
// admin listener on unix:/path.sock) is on this machine, whatever its
// RemoteAddr says: it gets the token, and its peer is in the event.
func TestTokenAPIsAnswerUnixSocketCallers(t *testing.T) {
	rec := &recorder{}
	mux := auditMux(rec)
	ctx := listen.ConnContext(context.Background(), &listen.Conn{Peer: listen.Peer{UID: 1000, GID: 1000, Known: true}})
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, &net.UnixAddr{Name: "/run/credproxy/admin.sock", Net: "unix"})
	req := httptest.NewRequest("GET", "http://localhost/v1/token/wf", nil).WithContext(ctx)
	req.RemoteAddr = "@"
	req.Header.Set("Metadata", "true")
	if code := serveAudit(mux, req); code != 200 {
		t.Fatalf("a unix-socket caller = %d, want 200", code)
	}
	// Not on a unix listener (a TCP listener that learns callers too), a
	// remote address that is no address stays refused.
	tcp := listen.ConnContext(context.Background(), &listen.Conn{Peer: listen.Peer{UID: 1000, GID: 1000, Known: true}})
	tcp = context.WithValue(tcp, http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4zero, Port: 9901})
	req = httptest.NewRequest("GET", "http://localhost/v1/token/wf", nil).WithContext(tcp)
	req.RemoteAddr = "@"
	req.Header.Set("Metadata", "true")
	if code := serveAudit(mux, req); code != 403 {
		t.Errorf("RemoteAddr @ without a unix listener = %d, want 403", code)
	}
	evs := rec.take()
	if len(evs) != 2 || !evs[0].Peer.Known || evs[0].Peer.UID != 1000 || evs[0].Decision != edge.Allowed || evs[1].Decision != edge.CallerNotAllowed {
		t.Errorf("events %+v", evs)
	}
}
