package exchange

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/credproxy/credproxy/internal/secret"
)

// The CSP paths, relative to the base URL (docs/protocols.md 1a and 1b).
const (
	cspAPITokenPath = "csp/gateway/am/api/auth/api-tokens/authorize"
	cspAppPath      = "csp/gateway/am/api/auth/authorize"
)

// CSPAPIToken exchanges a VMware Cloud Services user API token for an
// access token (docs/protocols.md 1a).
type CSPAPIToken struct {
	// BaseURL is the CSP base URL, e.g. https://console.cloud.vmware.com;
	// a trailing slash makes no difference.
	BaseURL *url.URL
	// APIToken is the user API token, read at every exchange.
	APIToken secret.Ref
	// Client sends the request (exchange.NewHTTPClient()); it must be set
	// and have a Transport. Redirects are never followed, whatever its
	// CheckRedirect.
	Client *http.Client
	// DefaultTTL is the lifetime assumed when the answer has no expires_in.
	DefaultTTL time.Duration
}

var _ Source = (*CSPAPIToken)(nil)

// Fetch does one exchange. The body is `api_token=<token>`, with no
// Authorization header.
func (s *CSPAPIToken) Fetch(ctx context.Context) (Token, error) {
	const op = "csp api-token exchange"
	tok, err := s.APIToken.Load()
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	form := url.Values{"api_token": {tok.Reveal()}}
	return cspExchange(ctx, call{op: op, client: s.Client, sent: secret.NewCredentials(tok)}, s.BaseURL, cspAPITokenPath, form, "", s.DefaultTTL)
}

// CSPOAuthApp exchanges the ID and secret of a VMware Cloud Services
// server-to-server OAuth app for an access token (docs/protocols.md 1b).
type CSPOAuthApp struct {
	// BaseURL is the CSP base URL.
	BaseURL *url.URL
	// ClientID is the app ID.
	ClientID string
	// ClientSecret is the app secret, read at every exchange.
	ClientSecret secret.Ref
	// OrgID, when set, scopes the token to that organization.
	OrgID string
	// Client sends the request (exchange.NewHTTPClient()); it must be set
	// and have a Transport. Redirects are never followed, whatever its
	// CheckRedirect.
	Client *http.Client
	// DefaultTTL is the lifetime assumed when the answer has no expires_in.
	DefaultTTL time.Duration
}

var _ Source = (*CSPOAuthApp)(nil)

// Fetch does one exchange: grant_type=client_credentials with the app
// credentials in a Basic header. CSP wants them raw: base64("id:secret"),
// not the RFC 6749 2.3.1 form-encoding that golang.org/x/oauth2 applies
// first, which differs as soon as the secret holds '+', '/' or '='.
func (s *CSPOAuthApp) Fetch(ctx context.Context) (Token, error) {
	const op = "csp oauth-app exchange"
	sec, err := s.ClientSecret.Load()
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if s.OrgID != "" {
		form.Set("orgId", s.OrgID)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(s.ClientID+":"+sec.Reveal()))
	return cspExchange(ctx, call{op: op, client: s.Client, sent: secret.Credentials{}.WithPair(s.ClientID, sec)}, s.BaseURL, cspAppPath, form, basic, s.DefaultTTL)
}

func cspExchange(ctx context.Context, c call, base *url.URL, path string, form url.Values, authorization string, defaultTTL time.Duration) (Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, joinURL(base, path), strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", c.op, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	issued := time.Now()
	body, err := c.do(req)
	if err != nil {
		return Token{}, err
	}
	return c.parseToken(body, issued, defaultTTL)
}

// joinURL appends path to base so that a base with or without a trailing
// slash, and with or without a path of its own (an on-premises identity
// service behind a prefix), gives the same result.
func joinURL(base *url.URL, path string) string {
	u := *base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + path
	u.RawPath = ""
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}
