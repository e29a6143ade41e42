package demo

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// OAuth2Options configures the fake OAuth 2.0 authorization server.
type OAuth2Options struct {
	// ClientID and ClientSecret are the accepted client; both empty
	// accepts requests without client authentication (token exchange
	// with a federated identity).
	ClientID, ClientSecret string
	// RefreshToken is the first refresh token accepted. With Rotate, each
	// refresh answers a new one and the old one stops working.
	RefreshToken string
	Rotate       bool
	// SubjectToken is the accepted RFC 8693 subject token.
	SubjectToken string
	// TTL is the access-token lifetime; OmitExpiresIn leaves expires_in
	// out of answers.
	TTL           time.Duration
	OmitExpiresIn bool
	// RefreshExpiresIn, when set, is the raw JSON value of the
	// refresh_expires_in that refresh answers carry (seconds until the
	// refresh token expires, as Keycloak sends it; 0 for one that does
	// not). Nil leaves the field out.
	RefreshExpiresIn json.RawMessage
	// Now is the fake's clock; default time.Now.
	Now func() time.Time
}

// OAuth2Request is one token request the fake received.
type OAuth2Request struct {
	Header http.Header
	Form   url.Values
}

// OAuth2 is a fake RFC 6749 / RFC 8693 token endpoint at any path: client
// credentials, refresh token (optionally rotating) and token exchange.
// Errors are RFC 6749 JSON bodies. Safe for concurrent use.
type OAuth2 struct {
	opts OAuth2Options

	mu       sync.Mutex
	refresh  string
	issued   map[string]time.Time
	requests []OAuth2Request
}

// NewOAuth2 returns a fake authorization server.
func NewOAuth2(opts OAuth2Options) *OAuth2 {
	if opts.TTL <= 0 {
		opts.TTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &OAuth2{opts: opts, refresh: opts.RefreshToken, issued: map[string]time.Time{}}
}

// Valid reports whether token was issued here and has not expired.
func (o *OAuth2) Valid(token string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	exp, ok := o.issued[token]
	return ok && o.opts.Now().Before(exp)
}

// Issued reports whether token was issued here, expired or not: for a
// test that reads tokens now and then and must not fail because one
// expired between the read and the check.
func (o *OAuth2) Issued(token string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.issued[token]
	return ok
}

// Requests returns the token requests received.
func (o *OAuth2) Requests() []OAuth2Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]OAuth2Request, len(o.requests))
	for i, req := range o.requests {
		out[i] = OAuth2Request{Header: req.Header.Clone(), Form: cloneValues(req.Form)}
	}
	return out
}

// CurrentRefreshToken is the refresh token the server accepts now.
func (o *OAuth2) CurrentRefreshToken() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refresh
}

// ServeHTTP implements the token endpoint.
func (o *OAuth2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "form body expected")
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		oauthError(w, http.StatusRequestEntityTooLarge, "invalid_request", "request body larger than 64 KiB")
		return
	}
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "could not read the request body")
		return
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	o.mu.Lock()
	o.requests = append(o.requests, OAuth2Request{Header: r.Header.Clone(), Form: form})
	o.mu.Unlock()

	// Client authentication: RFC 6749 2.3.1 Basic (form-encoded, then
	// base64) or client_id/client_secret in the body.
	id, sec := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
		sec, _ = url.QueryUnescape(p)
	}
	if o.opts.ClientID != "" && (id != o.opts.ClientID || !secretEqual(sec, o.opts.ClientSecret)) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}

	resp := map[string]any{}
	switch form.Get("grant_type") {
	case "client_credentials":
	case "refresh_token":
		if !o.refreshGrant(form.Get("refresh_token"), resp) {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "The refresh token is invalid or expired")
			return
		}
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		if o.opts.SubjectToken == "" || form.Get("subject_token") != o.opts.SubjectToken || form.Get("subject_token_type") == "" {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "subject token rejected")
			return
		}
		resp["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token"
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	}
	tok := "oa." + randomHex(20)
	o.mu.Lock()
	o.issued[tok] = o.opts.Now().Add(o.opts.TTL)
	o.mu.Unlock()
	resp["access_token"] = tok
	resp["token_type"] = "Bearer"
	if !o.opts.OmitExpiresIn {
		resp["expires_in"] = int(o.opts.TTL.Seconds())
	}
	if sc := form.Get("scope"); sc != "" {
		resp["scope"] = sc
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

// refreshGrant checks the refresh token rt and adds to the answer resp
// what a refresh answers besides the access token: a rotated refresh
// token, refresh_expires_in. It reports whether rt is accepted.
func (o *OAuth2) refreshGrant(rt string, resp map[string]any) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.refresh == "" || rt != o.refresh {
		return false
	}
	if o.opts.Rotate {
		o.refresh = "rt." + randomHex(12)
		resp["refresh_token"] = o.refresh
	}
	if o.opts.RefreshExpiresIn != nil {
		resp["refresh_expires_in"] = o.opts.RefreshExpiresIn
	}
	return true
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
