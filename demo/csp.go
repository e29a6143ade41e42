package demo

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CSP paths (PROTOCOLS.md 1a and 1b).
const (
	CSPAPITokenPath = "/csp/gateway/am/api/auth/api-tokens/authorize"
	CSPAppPath      = "/csp/gateway/am/api/auth/authorize"
)

// maxFormBody bounds a token request body.
const maxFormBody = 64 << 10

// CSPOptions configures the fake VMware Cloud Services.
type CSPOptions struct {
	// APIToken is the user API token accepted by the api-token grant.
	APIToken string
	// ClientID and ClientSecret are the server-to-server app accepted by
	// the client-credentials grant.
	ClientID, ClientSecret string
	// TTL is the lifetime of issued tokens; default 30 s. expires_in is
	// TTL in seconds minus one (real CSP answers 1799 for 30 minutes).
	TTL time.Duration
	// Now is the fake's clock; default time.Now.
	Now func() time.Time
}

// Request is one request the fake received.
type Request struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
	Time         time.Time
}

// Fault makes the token endpoints misbehave, for tests.
type Fault struct {
	// Status and Body are the answer; ContentType defaults to
	// application/json.
	Status      int
	Body        string
	ContentType string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Delay is waited before answering (or until the client gives up).
	Delay time.Duration
	// Times is how many requests get the fault; 0 means until cleared.
	Times int
}

// CSP is a fake VMware Cloud Services identity service. It is an
// http.Handler and safe for concurrent use.
type CSP struct {
	opts      CSPOptions
	exchanges atomic.Int64

	mu        sync.Mutex
	ttl       time.Duration
	expiresIn json.RawMessage
	issued    map[string]time.Time // token -> expiry
	requests  []Request
	fault     *Fault
}

// NewCSP returns a fake CSP.
func NewCSP(opts CSPOptions) *CSP {
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &CSP{opts: opts, ttl: opts.TTL, issued: map[string]time.Time{}}
}

// Requests returns copies of the requests received so far.
func (c *CSP) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Request, len(c.requests))
	for i, r := range c.requests {
		out[i] = Request{Method: r.Method, Path: r.Path, Header: r.Header.Clone(), Form: cloneValues(r.Form), Time: r.Time}
	}
	return out
}

// Exchanges counts the tokens issued.
func (c *CSP) Exchanges() int { return int(c.exchanges.Load()) }

// Valid reports whether token was issued here and has not expired or been
// revoked. A renewal does not revoke the previous token, as with real CSP.
func (c *CSP) Valid(token string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.issued[token]
	return ok && c.opts.Now().Before(exp)
}

// Revoke makes token invalid at once.
func (c *CSP) Revoke(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.issued, token)
}

// RevokeAll makes every issued token invalid.
func (c *CSP) RevokeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.issued)
}

// SetFault makes the token endpoints answer with f.
func (c *CSP) SetFault(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = &f
}

// ClearFault restores normal answers.
func (c *CSP) ClearFault() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = nil
}

// SetTTL changes the lifetime of tokens issued from now on.
func (c *CSP) SetTTL(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ttl = d
}

// SetExpiresIn overrides the raw JSON of expires_in in answers (nil:
// computed from the TTL; "omit": left out), to test odd providers.
func (c *CSP) SetExpiresIn(raw json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expiresIn = raw
}

// ServeHTTP implements the two token endpoints.
func (c *CSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != CSPAPITokenPath && r.URL.Path != CSPAppPath {
		cspError(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		cspError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		cspError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody+1))
	if err != nil {
		return
	}
	if len(body) > maxFormBody {
		cspError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		cspError(w, http.StatusBadRequest, "malformed form body")
		return
	}

	c.mu.Lock()
	c.requests = append(c.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form, Time: c.opts.Now()})
	fault := c.takeFaultLocked()
	c.mu.Unlock()
	if fault != nil {
		c.serveFault(w, r, fault)
		return
	}

	if r.URL.Path == CSPAPITokenPath {
		tok := form.Get("api_token")
		if tok == "" {
			tok = form.Get("refresh_token") // older clients
		}
		if c.opts.APIToken == "" || tok != c.opts.APIToken {
			cspError(w, http.StatusBadRequest, "invalid_grant: Invalid refresh token: "+mask(tok))
			return
		}
	} else {
		id, secret, ok := rawBasic(r.Header.Get("Authorization"))
		if !ok || c.opts.ClientID == "" || id != c.opts.ClientID || secret != c.opts.ClientSecret {
			cspError(w, http.StatusUnauthorized, "invalid_client: Client authentication failed")
			return
		}
		if form.Get("grant_type") != "client_credentials" {
			cspError(w, http.StatusBadRequest, "unsupported_grant_type")
			return
		}
	}
	c.issue(w)
}

func (c *CSP) takeFaultLocked() *Fault {
	f := c.fault
	if f == nil {
		return nil
	}
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			c.fault = nil
		}
	}
	cp := *f
	return &cp
}

func (c *CSP) serveFault(w http.ResponseWriter, r *http.Request, f *Fault) {
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	ct := f.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, f.Body)
}

func (c *CSP) issue(w http.ResponseWriter) {
	tok := "csp." + randomHex(24)
	c.mu.Lock()
	ttl, raw := c.ttl, c.expiresIn
	c.issued[tok] = c.opts.Now().Add(ttl)
	c.mu.Unlock()
	c.exchanges.Add(1)

	expiresIn := json.RawMessage(fmt.Sprint(max(1, int(ttl.Seconds())-1)))
	if ttl < 2*time.Second {
		expiresIn = json.RawMessage(fmt.Sprint(max(1, int(ttl.Seconds()))))
	}
	if raw != nil {
		expiresIn = raw
	}
	body := map[string]any{
		"id_token": "idt." + randomHex(8), "token_type": "bearer", "scope": "*",
		"access_token": tok, "refresh_token": "rt." + randomHex(8), "expires_in": expiresIn,
	}
	if string(raw) == "omit" {
		delete(body, "expires_in")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

// rawBasic decodes a Basic header the way CSP does: base64 of
// "id:secret", with no form-decoding of either part.
func rawBasic(h string) (id, secret string, ok bool) {
	enc, found := strings.CutPrefix(h, "Basic ")
	if !found {
		return "", "", false
	}
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(dec), ":")
}

func cspError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"statusCode": status, "message": msg, "cspErrorCode": "", "requestId": randomHex(8),
	})
}

// mask keeps the last 4 characters of a credential, as services do in
// their messages.
func mask(s string) string {
	if len(s) <= 4 {
		return "****"
	}
	return "****" + s[len(s)-4:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
