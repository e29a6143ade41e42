package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/credproxy/credproxy/internal/atomicfile"
	"github.com/credproxy/credproxy/internal/secret"
)

// OAuth2Client holds what every generic OAuth 2.0 kind shares: the token
// endpoint, the client and how it authenticates. golang.org/x/oauth2 builds
// the requests and parses the answers; credproxy adds the checks of the
// token it then puts in a header, the default lifetime and its error type.
type OAuth2Client struct {
	// TokenURL is the token endpoint.
	TokenURL string
	// ClientID and ClientSecret authenticate the client; both may be
	// empty where the grant needs no client authentication.
	ClientID     string
	ClientSecret secret.Ref
	// AuthStyleBody sends the client credentials as client_id and
	// client_secret form fields instead of HTTP Basic (RFC 6749 2.3.1,
	// form-encoded before base64).
	AuthStyleBody bool
	// Scopes and Audience are sent when set.
	Scopes   []string
	Audience string
	// Client sends the requests (exchange.NewHTTPClient()); it must be set
	// and have a Transport. Redirects are never followed, whatever its
	// CheckRedirect.
	Client *http.Client
	// DefaultTTL is the lifetime assumed when the answer has no expires_in.
	DefaultTTL time.Duration
}

func (c *OAuth2Client) authStyle(secretSet bool) oauth2.AuthStyle {
	if c.AuthStyleBody || (c.ClientID == "" && !secretSet) {
		return oauth2.AuthStyleInParams // with no client, nothing is sent
	}
	return oauth2.AuthStyleInHeader
}

func (c *OAuth2Client) clientSecret() (secret.Secret, error) {
	if !c.ClientSecret.IsSet() {
		return secret.Secret{}, nil
	}
	return c.ClientSecret.Load()
}

// sent lists the credentials an exchange sends: the client secret, alone
// and in the Basic pair in both forms (the header or the body may carry
// it), and the grant's own credentials.
func (c *OAuth2Client) sent(sec secret.Secret, grant ...secret.Secret) secret.Credentials {
	return secret.NewCredentials(grant...).WithPair(c.ClientID, sec)
}

// exchangeCall is one call into golang.org/x/oauth2: its context, and the
// answer x/oauth2 received (status, media type and body), which its own
// errors for a 2xx answer it cannot use do not carry; credproxy describes
// such an answer itself rather than pass on x/oauth2's text, which quotes
// the answer.
type exchangeCall struct {
	ctx context.Context

	mu          sync.Mutex
	status      int
	contentType string
	body        []byte
}

func (ec *exchangeCall) answer() (status int, contentType string, body []byte) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	return ec.status, ec.contentType, ec.body
}

// ctx passes credproxy's HTTP client to golang.org/x/oauth2, through a
// transport that notes the status of the answer. Without a client it is an
// error: x/oauth2 would use http.DefaultClient, which follows redirects
// and HTTPS_PROXY.
func (c *OAuth2Client) ctx(ctx context.Context, op string) (*exchangeCall, error) {
	cl, err := sender(op, c.Client)
	if err != nil {
		return nil, err
	}
	ec := &exchangeCall{}
	base := cl.Transport
	cl.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		// x/oauth2 reads at most 1 MiB and parses what it got, so an
		// answer over the cap would be reported as broken JSON. Read it
		// here with the cap and say what is wrong instead.
		body, err := readAnswer(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(body) > MaxResponseSize {
			return nil, &oversizedError{status: resp.StatusCode}
		}
		ec.mu.Lock()
		ec.status, ec.contentType, ec.body = resp.StatusCode, resp.Header.Get("Content-Type"), body
		ec.mu.Unlock()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	})
	ec.ctx = context.WithValue(ctx, oauth2.HTTPClient, cl)
	return ec, nil
}

// oversizedError is how the transport tells token that the answer was
// over MaxResponseSize.
type oversizedError struct{ status int }

func (e *oversizedError) Error() string {
	return fmt.Sprintf("HTTP %d answer larger than %d bytes", e.status, MaxResponseSize)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// token converts an x/oauth2 answer into a Token, or its error into an
// *Error scrubbed of the credentials sent.
func (c *OAuth2Client) token(op string, ec *exchangeCall, tok *oauth2.Token, err error, sent secret.Credentials) (Token, error) {
	_, _, body := ec.answer()
	cl := call{op: op, sent: sent}.withAnswer(body)
	if err != nil {
		return Token{}, cl.oauth2Error(ec, err)
	}
	if err := checkToken(tok.AccessToken); err != nil {
		return Token{}, cl.fail(http.StatusOK, err.Error())
	}
	if tt := tok.Type(); !strings.EqualFold(tt, "bearer") && !strings.EqualFold(tt, "n_a") {
		return Token{}, cl.fail(http.StatusOK, notBearer(tt, secret.NewRedactor(cl.sent)))
	}
	// x/oauth2 reads an expires_in of 0 as "no expiry" and a negative one
	// as an expiry in the past. Either way the service issued a token that
	// is already expired: refused as for CSP, never served for DefaultTTL.
	if secs, ok := expiresInSeconds(tok.Extra("expires_in")); ok && secs <= 0 {
		return Token{}, cl.fail(http.StatusOK, fmt.Sprintf("expires_in %v: the token is already expired", secs))
	}
	expiry := tok.Expiry
	now := time.Now()
	switch {
	case !expiry.IsZero() && !expiry.After(now):
		return Token{}, cl.fail(http.StatusOK, "expires_in is not positive: the token is already expired")
	case expiry.IsZero():
		expiry = now.Add(c.DefaultTTL) // no expires_in: never "forever"
	case expiry.Sub(now) > MaxLifetime:
		expiry = now.Add(MaxLifetime)
	}
	return Token{Value: secret.New(tok.AccessToken), Expiry: expiry}, nil
}

// oauth2Error turns an error of x/oauth2 into credproxy's: an *Error for
// an answer (scrubbed like every service text), a transport failure
// otherwise. x/oauth2's own text is never passed on: it quotes the answer.
func (c call) oauth2Error(ec *exchangeCall, err error) error {
	if oe, ok := errors.AsType[*oversizedError](err); ok {
		return oversized(c.op, oe.status)
	}
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		return c.serviceError(re.Response, re.Body)
	}
	// A 2xx answer x/oauth2 could not use (not JSON or a form, no
	// access_token): an *Error with the status, as for CSP, so that logs
	// and metrics tell it from a network failure.
	if st, ct, body := ec.answer(); st >= 200 && st <= 299 && ec.ctx.Err() == nil {
		return c.fail(st, unusableAnswer(err, ct, body, secret.NewRedactor(c.sent)))
	}
	return c.transportFailure("", err)
}

// unusableAnswer says why x/oauth2 could not use a 2xx answer, from the
// answer itself.
func unusableAnswer(err error, contentType string, body []byte, r *secret.Redactor) string {
	const prefix = "answer is not a usable token response: "
	if strings.Contains(err.Error(), "missing access_token") {
		return "answer has no access_token"
	}
	if ct, _, _ := mime.ParseMediaType(contentType); ct == "application/x-www-form-urlencoded" || ct == "text/plain" {
		return prefix + "cannot parse the form-encoded answer"
	}
	var v struct {
		AccessToken  string          `json:"access_token"`
		TokenType    string          `json:"token_type"`
		RefreshToken string          `json:"refresh_token"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return prefix + "cannot parse json: " + jsonProblem(err, r)
	}
	if _, err := parseExpiresIn(v.ExpiresIn, time.Minute, r); err != nil {
		return prefix + err.Error()
	}
	if len(v.ExpiresIn) > 0 {
		// x/oauth2 reads expires_in as a whole number of seconds.
		return prefix + fmt.Sprintf("expires_in %.40q is not a whole number of seconds", r.Clean(string(v.ExpiresIn)))
	}
	return prefix + "cannot parse json"
}

// expiresInSeconds reads the raw expires_in x/oauth2 keeps: a JSON number
// (float64), a string holding one, or a form value (int64, float64 or
// string).
func expiresInSeconds(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	return 0, false
}

// OAuth2ClientCredentials is the client-credentials grant (RFC 6749 4.4).
type OAuth2ClientCredentials struct {
	OAuth2Client
}

var _ Source = (*OAuth2ClientCredentials)(nil)

// Fetch does one client-credentials exchange.
func (s *OAuth2ClientCredentials) Fetch(ctx context.Context) (Token, error) {
	const op = "oauth2 client-credentials exchange"
	sec, err := s.clientSecret()
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	cfg := clientcredentials.Config{
		ClientID: s.ClientID, ClientSecret: sec.Reveal(), TokenURL: s.TokenURL,
		Scopes: s.Scopes, AuthStyle: s.authStyle(!sec.Empty()),
	}
	if s.Audience != "" {
		cfg.EndpointParams = url.Values{"audience": {s.Audience}}
	}
	ec, err := s.ctx(ctx, op)
	if err != nil {
		return Token{}, err
	}
	tok, err := cfg.Token(ec.ctx)
	return s.token(op, ec, tok, err, s.sent(sec))
}

// OAuth2TokenExchange is the RFC 8693 token exchange: a subject token, such
// as a Kubernetes projected service-account token, is exchanged for an
// access token, so that no long-lived secret is stored at all.
type OAuth2TokenExchange struct {
	OAuth2Client
	// SubjectTokenFile is read at every exchange: the kubelet rotates
	// projected tokens in place.
	SubjectTokenFile string
	// SubjectTokenType is e.g. urn:ietf:params:oauth:token-type:jwt.
	SubjectTokenType string
}

var _ Source = (*OAuth2TokenExchange)(nil)

// Fetch does one token exchange.
func (s *OAuth2TokenExchange) Fetch(ctx context.Context) (Token, error) {
	const op = "oauth2 token exchange"
	subject, err := secret.Ref{File: s.SubjectTokenFile, Var: "SUBJECT_TOKEN_FILE"}.Load()
	if err != nil {
		return Token{}, fmt.Errorf("%s: subject token: %w", op, err)
	}
	sec, err := s.clientSecret()
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	params := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject.Reveal()},
		"subject_token_type": {s.SubjectTokenType},
	}
	if s.Audience != "" {
		params.Set("audience", s.Audience)
	}
	cfg := clientcredentials.Config{
		ClientID: s.ClientID, ClientSecret: sec.Reveal(), TokenURL: s.TokenURL,
		Scopes: s.Scopes, AuthStyle: s.authStyle(!sec.Empty()), EndpointParams: params,
	}
	ec, err := s.ctx(ctx, op)
	if err != nil {
		return Token{}, err
	}
	tok, err := cfg.Token(ec.ctx)
	return s.token(op, ec, tok, err, s.sent(sec, subject))
}

// OAuth2RefreshToken exchanges a refresh token (RFC 6749 6). When the
// provider rotates the refresh token, the new one is used from then on: it
// is kept in memory and, when the refresh token came from a writable file,
// written back with internal/atomicfile (directory synced after the
// rename), so that neither a restart nor a crash brings back the dead one.
// The Token it returns says so (Token.Credential.Rotated), and says when
// the refresh token expires when the answer has refresh_expires_in
// (Token.Credential.ExpiresAt).
type OAuth2RefreshToken struct {
	OAuth2Client
	// RefreshToken is the configured refresh token.
	RefreshToken secret.Ref

	mu sync.Mutex
	// current is the refresh token in use once the provider has rotated
	// it; fromFile is the file's content it replaced, so that a change of
	// the file by an operator still wins.
	current, fromFile secret.Secret
	// syncDir, when set, is the write-back's atomicfile.Writer.SyncDir:
	// tests record the directory sync with it.
	syncDir func(dir string) error
}

var _ Source = (*OAuth2RefreshToken)(nil)

// Fetch does one refresh.
func (s *OAuth2RefreshToken) Fetch(ctx context.Context) (Token, error) {
	const op = "oauth2 refresh-token exchange"
	configured, err := s.RefreshToken.Load()
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	rt := configured
	if !s.current.Empty() && configured.Equal(s.fromFile) {
		rt = s.current
	}
	s.mu.Unlock()
	sec, err := s.clientSecret()
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	cfg := oauth2.Config{
		ClientID: s.ClientID, ClientSecret: sec.Reveal(), Scopes: s.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: s.authStyle(!sec.Empty())},
	}
	ec, err := s.ctx(ctx, op)
	if err != nil {
		return Token{}, err
	}
	issued := time.Now()
	tok, err := cfg.TokenSource(ec.ctx, &oauth2.Token{RefreshToken: rt.Reveal()}).Token()
	out, err := s.token(op, ec, tok, err, s.sent(sec, rt))
	if err != nil {
		return out, err
	}
	var news CredentialNews
	if next := secret.New(tok.RefreshToken); !next.Empty() && !next.Equal(rt) {
		news.Rotated = s.rotate(configured, next)
	}
	if secs, ok := expiresInSeconds(tok.Extra("refresh_expires_in")); ok && !math.IsNaN(secs) {
		// Counted from when the request was sent, like the access
		// token's lifetime: on the early side.
		news.ExpiryReported = true
		if secs > 0 {
			news.ExpiresAt = issued.Add(time.Duration(min(secs, maxCredentialLifetime.Seconds()) * float64(time.Second)))
		}
	}
	if news.Rotated != nil || news.ExpiryReported {
		out.Credential = &news
	}
	return out, nil
}

// refreshTokenFileMode is the mode of the refresh-token file after a
// write-back: the token is for the user credproxy runs as.
const refreshTokenFileMode = 0o600

// maxCredentialLifetime caps a credential lifetime read from an answer
// (refresh_expires_in), so that an absurd number cannot overflow a
// time.Duration; a hundred years is "does not expire" for any purpose.
const maxCredentialLifetime = 100 * 365 * 24 * time.Hour

// rotate records a rotated refresh token and writes it back to the file it
// came from when that file is writable; it returns what became of it.
func (s *OAuth2RefreshToken) rotate(configured, next secret.Secret) *Rotation {
	s.mu.Lock()
	s.current, s.fromFile = next, configured
	s.mu.Unlock()
	if s.RefreshToken.File == "" {
		return &Rotation{}
	}
	w := atomicfile.Writer{SyncDir: s.syncDir}
	err := w.WriteFile(s.RefreshToken.File, []byte(next.Reveal()+"\n"), refreshTokenFileMode)
	if err == nil {
		s.mu.Lock()
		s.fromFile = next // the file now holds the current token
		s.mu.Unlock()
	}
	return &Rotation{WrittenBack: err == nil, Err: err}
}
