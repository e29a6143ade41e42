package demo

import (
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"sync"
	"time"
)

// SplunkSessionPath is the session endpoint (docs/protocols.md 2a, 2b).
const SplunkSessionPath = "/v2/session"

// SplunkOptions configures the fake Splunk Observability Cloud API.
type SplunkOptions struct {
	// Email, Password and OrgID are the accepted login; an empty OrgID
	// accepts any.
	Email, Password, OrgID string
	// TTL is the session lifetime; default 30 days as in the service.
	TTL time.Duration
	// Now is the fake's clock; default time.Now.
	Now func() time.Time
}

// SplunkLogin is one login the fake received.
type SplunkLogin struct {
	Header http.Header
	Body   map[string]any
}

// Splunk fakes the session endpoints of Splunk Observability Cloud: login
// with POST /v2/session, logout with DELETE /v2/session. Safe for
// concurrent use.
type Splunk struct {
	opts SplunkOptions

	mu       sync.Mutex
	sessions map[string]time.Time
	logins   []SplunkLogin
	deleted  []string
}

// NewSplunk returns a fake Splunk API.
func NewSplunk(opts SplunkOptions) *Splunk {
	if opts.TTL <= 0 {
		opts.TTL = 30 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Splunk{opts: opts, sessions: map[string]time.Time{}}
}

// Valid reports whether token is a live session.
func (s *Splunk) Valid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.sessions[token]
	return ok && s.opts.Now().Before(exp)
}

// Logins returns the logins received.
func (s *Splunk) Logins() []SplunkLogin {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SplunkLogin, len(s.logins))
	for i, l := range s.logins {
		out[i] = SplunkLogin{Header: l.Header.Clone(), Body: maps.Clone(l.Body)}
	}
	return out
}

// Deleted returns the session tokens ended by DELETE, in order.
func (s *Splunk) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deleted...)
}

// Live counts the sessions not ended (expired or not).
func (s *Splunk) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// ServeHTTP implements POST and DELETE /v2/session.
func (s *Splunk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != SplunkSessionPath {
		splunkError(w, http.StatusNotFound, "not found")
		return
	}
	switch r.Method {
	case http.MethodPost:
		s.login(w, r)
	case http.MethodDelete:
		tok := r.Header.Get("X-SF-Token")
		s.mu.Lock()
		_, ok := s.sessions[tok]
		delete(s.sessions, tok)
		if ok {
			s.deleted = append(s.deleted, tok)
		}
		s.mu.Unlock()
		if !ok {
			splunkError(w, http.StatusNotFound, "Session not found")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		splunkError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (s *Splunk) login(w http.ResponseWriter, r *http.Request) {
	if _, present := r.Header["X-Sf-Token"]; present {
		splunkError(w, http.StatusUnauthorized, "Invalid token specified.") // an empty X-SF-Token is rejected
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		splunkError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var body map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBody)).Decode(&body); err != nil {
		splunkError(w, http.StatusBadRequest, "malformed JSON")
		return
	}
	s.mu.Lock()
	s.logins = append(s.logins, SplunkLogin{Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	email, _ := body["email"].(string)
	password, _ := body["password"].(string)
	org, _ := body["organizationId"].(string)
	if email != s.opts.Email || !secretEqual(password, s.opts.Password) || (s.opts.OrgID != "" && org != s.opts.OrgID) {
		splunkError(w, http.StatusBadRequest, "Invalid email or password")
		return
	}
	tok := "sfx." + randomHex(20)
	now := s.opts.Now()
	expiry := now.Add(s.opts.TTL)
	s.mu.Lock()
	s.sessions[tok] = expiry
	s.mu.Unlock()
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	writeJSON(w, http.StatusOK, map[string]any{
		"accessToken": tok, "expiryMs": expiry.UnixMilli(), "id": randomHex(6), "organizationId": org,
		"userId": randomHex(6), "email": email, "sessionType": "ORG_USER",
	})
}

func splunkError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "message": msg})
}
