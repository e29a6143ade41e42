package demo

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The CSP token endpoints, relative to the base URL.
const (
	// CSPAPITokenPath exchanges a user API token (docs/protocols.md 1a).
	CSPAPITokenPath = "/csp/gateway/am/api/auth/api-tokens/authorize"
	// CSPAppPath is the client-credentials grant of a server-to-server
	// OAuth app (docs/protocols.md 1b).
	CSPAppPath = "/csp/gateway/am/api/auth/authorize"
	// CSPDetailsPath answers the details of a user API token, its own
	// expiry among them (docs/protocols.md 1e).
	CSPDetailsPath = "/csp/gateway/am/api/auth/api-tokens/details"
)

// maxFormBody bounds a token request body. A real one is well under 1 KiB,
// so a body near the bound is a client bug that deserves a loud 413.
const maxFormBody = 64 << 10

// maxRecorded bounds the requests a CSP remembers, so that a long-running
// `credproxy demo` does not grow without end; tests send far fewer.
const maxRecorded = 4096

// CSPOptions configures a fake VMware Cloud Services. The zero value is a
// CSP that refuses every credential.
type CSPOptions struct {
	// APIToken is the user API token the api-token grant accepts; empty
	// disables that grant.
	APIToken string
	// ClientID and ClientSecret are the server-to-server app the
	// client-credentials grant accepts; the grant is disabled unless both
	// are set.
	ClientID, ClientSecret string
	// OrgID is the organization an app token is scoped to when the request
	// names none, as real CSP falls back to the app's default org. An orgId
	// in the request is accepted whatever it is, since the fake models no
	// org membership; tests read what a token got with CSP.Org.
	OrgID string
	// APITokenExpiresAt is when the user API token itself expires. From
	// then on the api-token grant refuses it (400) and the details
	// endpoint does not know it (404), as CSP's covers unexpired tokens
	// only. Zero: the API token never expires, and its details have no
	// expiresAt.
	APITokenExpiresAt time.Time
	// DetailsInMillis answers the times of the details endpoint
	// (createdAt, expiresAt, lastUsedAt) in milliseconds since 1970, as
	// public clients read them, instead of the seconds of the reference:
	// which one CSP sends is unconfirmed (docs/protocols.md 1e).
	DetailsInMillis bool
	// TTL is the lifetime of issued tokens; default 30 s, short enough
	// that the demo shows a renewal within a minute.
	TTL time.Duration
	// Now is the fake's clock, for issue times, expiry and the Time of
	// recorded requests; default time.Now. It is called with the CSP's
	// lock held, so it must not call back into the CSP.
	Now func() time.Time
}

// Request is one request the CSP received, whatever its outcome.
type Request struct {
	// Method is the request method; Path the URL path, without query.
	Method, Path string
	// Header is as received, credentials included, so that tests can
	// assert the exact Authorization header.
	Header http.Header
	// Form is the parsed body; nil when the request was refused before it
	// was parsed (wrong path, method or Content-Type; too large; malformed).
	// A details request's JSON body is in Body instead.
	Form url.Values
	// Body is the body of a details request as received; nil for the
	// token endpoints.
	Body []byte
	// Time is when the request arrived, by CSPOptions.Now.
	Time time.Time
}

// Fault makes the token endpoints misbehave, for tests of how credproxy
// copes with an identity service that is down, slow or odd.
type Fault struct {
	// Status is the status code of the answer. 0 answers normally after
	// Delay: a slow but working service.
	Status int
	// Body is sent verbatim, with ContentType (default application/json).
	Body        string
	ContentType string
	// Delay is waited before answering; a client that gives up sooner
	// gets no answer at all.
	Delay time.Duration
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Times is how many requests get the fault before it clears itself;
	// 0 keeps it until ClearFault.
	Times int
	// Until, when set, clears the fault at that time (by CSPOptions.Now),
	// if Times has not cleared it before: an outage of a given length.
	Until time.Time
	// Drop closes the connection after Delay without an answer: a network
	// failure. Status, Body and the headers are then not used.
	Drop bool
}

// CSP is a fake VMware Cloud Services identity service: an http.Handler
// serving CSPAPITokenPath and CSPAppPath exactly as docs/protocols.md
// section 1 describes them, issuing opaque "csp." tokens. Use Valid as the
// credential check of an Echo to get an API that accepts only the tokens
// this CSP issued and that have not expired.
//
// A CSP is safe for concurrent use: it is served by many connections while
// a test reads its records and changes its behaviour.
type CSP struct {
	opts      CSPOptions // read-only after NewCSP
	exchanges atomic.Int64

	// mu guards the fields below. It is held only for map and slice work,
	// never while waiting or writing a response, so that a fault's Delay
	// or a slow client cannot stall other requests.
	mu        sync.Mutex
	ttl       time.Duration
	expiresIn json.RawMessage // nil: computed from ttl; empty: omitted
	fault     *Fault
	issued    map[string]grant // by access token
	requests  []Request
	// detailsFault and details are the fault and the records of the
	// details endpoint, apart from the token endpoints', so that a test
	// of a failing lookup keeps its exchanges working, and one counting
	// exchanges is not disturbed by lookups.
	detailsFault *Fault
	details      []Request
	// created and lastUsed are what the details report of the API token:
	// when the CSP was made, and its last successful exchange.
	created, lastUsed time.Time
}

// grant is what the CSP remembers of an issued access token.
type grant struct {
	expiry time.Time
	org    string
}

// NewCSP returns a fake CSP configured by opts.
func NewCSP(opts CSPOptions) *CSP {
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &CSP{opts: opts, ttl: opts.TTL, issued: map[string]grant{}, created: opts.Now()}
}

// Requests returns deep copies of the requests received so far, oldest
// first (at most the last 4096).
func (c *CSP) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Request, len(c.requests))
	for i, r := range c.requests {
		r.Header = r.Header.Clone()
		r.Form = cloneValues(r.Form)
		out[i] = r
	}
	return out
}

// Exchanges counts the access tokens issued, through either grant.
func (c *CSP) Exchanges() int { return int(c.exchanges.Load()) }

// Valid reports whether token was issued by this CSP and has neither
// expired (at issue time + TTL, by CSPOptions.Now) nor been revoked. A
// renewal does not revoke the previous token: as with real CSP, old
// tokens stay valid until they expire.
func (c *CSP) Valid(token string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.issued[token]
	return ok && c.opts.Now().Before(g.expiry)
}

// Org returns the organization token is scoped to: the request's orgId,
// else CSPOptions.OrgID. It is "" for a token this CSP does not know, one
// revoked, or one expired and forgotten since.
func (c *CSP) Org(token string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.issued[token].org
}

// Revoke makes token invalid at once, as when a user revokes it in the
// console; the echo API then answers 401.
func (c *CSP) Revoke(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.issued, token)
}

// RevokeAll makes every token issued so far invalid at once.
func (c *CSP) RevokeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.issued)
}

// SetFault makes the token endpoints answer with f instead of checking the
// credential, until ClearFault or f.Times requests. Requests refused
// before (wrong path, method, Content-Type or size) are not affected and
// do not count. It panics if f.Status is neither 0 nor in 200-999, a bug
// in the test that net/http would otherwise report as a handler panic.
func (c *CSP) SetFault(f Fault) {
	if f.Status != 0 && (f.Status < 200 || f.Status > 999) {
		panic(fmt.Sprintf("demo: CSP.SetFault: status %d", f.Status))
	}
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

// SetDetailsFault makes the details endpoint answer with f, as SetFault
// does for the token endpoints, which it leaves alone.
func (c *CSP) SetDetailsFault(f Fault) {
	if f.Status != 0 && (f.Status < 200 || f.Status > 999) {
		panic(fmt.Sprintf("demo: CSP.SetDetailsFault: status %d", f.Status))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.detailsFault = &f
}

// ClearDetailsFault restores normal answers of the details endpoint.
func (c *CSP) ClearDetailsFault() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.detailsFault = nil
}

// DetailsRequests returns deep copies of the requests the details
// endpoint received, oldest first (at most the last 4096). Requests does
// not hold them.
func (c *CSP) DetailsRequests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Request, len(c.details))
	for i, r := range c.details {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// SetTTL changes the lifetime of the tokens issued from now on; those
// already issued keep theirs. A d <= 0 issues tokens that are already
// expired, answered with an expires_in of 0 or less.
func (c *CSP) SetTTL(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ttl = d
}

// SetExpiresIn overrides the raw JSON value of expires_in in the answers
// from now on, for tests of odd or broken services: `0`, `-5`, `"60"`,
// `null`, `1e300`. A nil raw restores the value computed from the TTL; an
// empty, non-nil one (json.RawMessage{}) leaves the field out. The
// lifetime the CSP enforces is still the TTL. It panics if raw is not
// valid JSON, since the answer could not be encoded.
func (c *CSP) SetExpiresIn(raw json.RawMessage) {
	if len(raw) > 0 && !json.Valid(raw) {
		panic(fmt.Sprintf("demo: CSP.SetExpiresIn: invalid JSON %q", raw))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expiresIn = bytes.Clone(raw) // keeps nil nil and empty empty
}

// ServeHTTP records the request, then answers it as CSP would, or with
// the fault set.
func (c *CSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == CSPDetailsPath {
		c.serveDetails(w, r)
		return
	}
	form, status, msg := readTokenRequest(w, r)
	c.mu.Lock()
	c.recordLocked(r, form)
	if !c.refuseOrFaultLocked(w, r, &c.fault, status, msg) {
		return
	}

	var org string
	switch r.URL.Path {
	case CSPAPITokenPath:
		// credproxy sends api_token=; older clients send refresh_token=,
		// some add grant_type=api_token, which CSP ignores and so do we.
		tok := form.Get("api_token")
		if tok == "" {
			tok = form.Get("refresh_token")
		}
		if tok == "" {
			cspError(w, http.StatusBadRequest, "invalid_request: api_token is missing")
			return
		}
		if !secretEqual(tok, c.opts.APIToken) {
			cspError(w, http.StatusBadRequest, "invalid_grant: Invalid refresh token: "+mask(tok))
			return
		}
		if c.apiTokenExpired() {
			cspError(w, http.StatusBadRequest, "invalid_grant: The API token has expired: "+mask(tok))
			return
		}
	case CSPAppPath:
		// r.BasicAuth only base64-decodes and splits at the first colon;
		// it does not form-decode id and secret as RFC 6749 2.3.1 would.
		// That is what CSP does, so a client that form-encodes a secret
		// holding + / = is refused here as it would be there.
		id, secret, ok := r.BasicAuth()
		if !ok || !secretEqual(id, c.opts.ClientID) || !secretEqual(secret, c.opts.ClientSecret) {
			cspError(w, http.StatusUnauthorized, "invalid_client: Client authentication failed")
			return
		}
		if form.Get("grant_type") != "client_credentials" {
			cspError(w, http.StatusBadRequest, "unsupported_grant_type: grant_type must be client_credentials")
			return
		}
		org = form.Get("orgId")
	}
	c.issue(w, org)
}

// readTokenRequest checks what both token endpoints require and parses the
// form body. A non-zero status is the refusal to send, with its message.
func readTokenRequest(w http.ResponseWriter, r *http.Request) (form url.Values, status int, msg string) {
	if r.URL.Path != CSPAPITokenPath && r.URL.Path != CSPAppPath {
		return nil, http.StatusNotFound, "Not Found"
	}
	body, status, msg := readPost(w, r, "application/x-www-form-urlencoded")
	if status != 0 {
		return nil, status, msg
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, http.StatusBadRequest, "malformed form body"
	}
	return form, 0, ""
}

// readPost checks that r is a POST of contentType, as CSP's endpoints
// require, and reads its body (at most maxFormBody). A non-zero status is
// the refusal to send, with its message.
func readPost(w http.ResponseWriter, r *http.Request, contentType string) (body []byte, status int, msg string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, http.StatusMethodNotAllowed, "Request method '" + r.Method + "' not supported"
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != contentType {
		return nil, http.StatusUnsupportedMediaType, "Content-Type must be " + contentType
	}
	// MaxBytesReader, unlike a LimitReader, also makes the server close
	// the connection instead of draining the rest of an oversized body.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return nil, http.StatusRequestEntityTooLarge, "request body larger than 64 KiB"
	}
	if err != nil {
		return nil, http.StatusBadRequest, "could not read the request body"
	}
	return body, 0, ""
}

// recordLocked appends r to the records, forgetting the oldest beyond
// maxRecorded. form is owned by the record from now on.
func (c *CSP) recordLocked(r *http.Request, form url.Values) {
	if len(c.requests) >= maxRecorded {
		c.requests = slices.Delete(c.requests, 0, len(c.requests)-maxRecorded+1)
	}
	c.requests = append(c.requests, Request{
		Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form, Time: c.opts.Now(),
	})
}

// refuseOrFaultLocked ends a request that readTokenRequest or
// readDetailsRequest refused (status != 0) with CSP's error, or takes the
// endpoint's pending fault and serves it. It unlocks c.mu, and reports
// whether the handler should go on to answer normally.
func (c *CSP) refuseOrFaultLocked(w http.ResponseWriter, r *http.Request, pending **Fault, status int, msg string) bool {
	var fault *Fault
	if status == 0 {
		fault = takeFaultLocked(pending, c.opts.Now())
	}
	c.mu.Unlock()
	if status != 0 {
		cspError(w, status, msg)
		return false
	}
	return fault == nil || serveFault(w, r, fault)
}

// takeFaultLocked returns a copy of the fault *p to serve at now, if
// any, counting it against Times; it clears *p once Times or Until is
// reached.
func takeFaultLocked(p **Fault, now time.Time) *Fault {
	if *p == nil {
		return nil
	}
	if u := (*p).Until; !u.IsZero() && !now.Before(u) {
		*p = nil
		return nil
	}
	f := **p
	if (*p).Times > 0 {
		(*p).Times--
		if (*p).Times == 0 {
			*p = nil
		}
	}
	return &f
}

// serveFault waits f.Delay, then answers with f. It reports whether the
// request should instead be answered normally (f.Status 0).
func serveFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false // the client gave up: nobody to answer
		}
	}
	if f.Drop {
		// net/http closes the connection (or resets the HTTP/2 stream)
		// without an answer, and logs nothing.
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return true
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
	return false
}

// cspToken is the success answer of both grants, fields in CSP's order.
type cspToken struct {
	IDToken      string          `json:"id_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in,omitempty"`
	Scope        string          `json:"scope"`
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
}

// issue mints an access token scoped to org (default CSPOptions.OrgID) and
// answers with it.
func (c *CSP) issue(w http.ResponseWriter, org string) {
	tok := cspToken{
		// Distinct prefixes, so that a test failure or a leak check
		// tells at a glance which kind of token went where.
		IDToken:      "csp-id." + randomHex(16),
		TokenType:    "bearer",
		Scope:        "*",
		AccessToken:  "csp." + randomHex(16),
		RefreshToken: "csp-rt." + randomHex(16),
	}
	if org == "" {
		org = c.opts.OrgID
	}
	c.mu.Lock()
	now := c.opts.Now()
	// Forget expired tokens so that a long-running demo does not
	// accumulate them; Valid would refuse them anyway.
	for t, g := range c.issued {
		if !now.Before(g.expiry) {
			delete(c.issued, t)
		}
	}
	c.issued[tok.AccessToken] = grant{expiry: now.Add(c.ttl), org: org}
	c.lastUsed = now
	ttl, raw := c.ttl, c.expiresIn
	c.mu.Unlock()
	c.exchanges.Add(1)

	tok.ExpiresIn = raw
	if raw == nil {
		tok.ExpiresIn = cspExpiresIn(ttl)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tok)
}

// cspExpiresIn is the expires_in real CSP answers for a lifetime: whole
// seconds, one short (1799 for 30 minutes), so the client's idea of the
// expiry errs on the early side. Lifetimes under 2 s are not shortened,
// lest 1 s become 0, which clients read as "already expired".
func cspExpiresIn(ttl time.Duration) json.RawMessage {
	secs := int64(ttl / time.Second)
	if ttl >= 2*time.Second {
		secs--
	}
	return strconv.AppendInt(nil, secs, 10)
}

// cspErrorBody is CSP's error body (shape unconfirmed, docs/protocols.md 1f);
// the details endpoint adds moduleCode.
type cspErrorBody struct {
	StatusCode   int    `json:"statusCode"`
	Message      string `json:"message"`
	CSPErrorCode string `json:"cspErrorCode"`
	ModuleCode   string `json:"moduleCode,omitempty"`
	RequestID    string `json:"requestId"`
}

// cspError answers status with a CSP error body. requestId is random, as
// a real one is unique per request: tests check that it gets logged.
func cspError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, cspErrorBody{StatusCode: status, Message: msg, RequestID: randomHex(8)})
}

// secretEqual reports whether got is the configured credential want, in
// time independent of where they differ. An empty want matches nothing,
// so that an unset option disables its grant rather than accepting "".
func secretEqual(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// mask hides a credential for an error message the way services do,
// showing its last four characters, and only when it is long enough for
// them to give little away.
func mask(s string) string {
	if len(s) < 16 {
		return "****"
	}
	return "****" + s[len(s)-4:]
}

// randomHex returns 2n hex digits from crypto/rand, which cannot fail
// (since Go 1.24 it crashes the program rather than return an error).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cloneValues deep-copies v, keeping nil nil.
func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
