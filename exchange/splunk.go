package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/credproxy/credproxy/internal/secret"
)

const splunkSessionPath = "v2/session"

// SplunkSession logs in to Splunk Observability Cloud and uses the session
// token (docs/protocols.md 2a). Sessions live 30 days; tokencache renews
// them ahead of their expiry like any token and ends each session it
// replaces, and the last one at shutdown, through Release (2b).
type SplunkSession struct {
	// BaseURL is the API base, https://api.<realm>.signalfx.com.
	BaseURL *url.URL
	// Email and Password are the login; the password is read at every
	// exchange.
	Email    string
	Password secret.Ref
	// OrgID, when set, selects the organization.
	OrgID string
	// Client sends the requests (exchange.NewHTTPClient()); it must be set
	// and have a Transport. Redirects are never followed, whatever its
	// CheckRedirect.
	Client *http.Client
	// DefaultTTL is the lifetime assumed when the answer has no expiryMs.
	DefaultTTL time.Duration
}

var (
	_ Source   = (*SplunkSession)(nil)
	_ Releaser = (*SplunkSession)(nil)
)

// Fetch creates a session.
func (s *SplunkSession) Fetch(ctx context.Context) (Token, error) {
	const op = "splunk session login"
	pw, err := s.Password.Load()
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	body := struct {
		Email          string `json:"email"`
		Password       string `json:"password"`
		OrganizationID string `json:"organizationId,omitempty"`
	}{s.Email, pw.Reveal(), s.OrgID}
	b, err := json.Marshal(body)
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, joinURL(s.BaseURL, splunkSessionPath), bytes.NewReader(b))
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	c := call{op: op, client: s.Client, sent: secret.NewCredentials(pw)}
	issued := time.Now()
	resp, err := c.doResponse(req)
	if err != nil {
		return Token{}, err
	}
	c = c.withAnswer(resp.body)
	var r struct {
		AccessToken string `json:"accessToken"`
		ExpiryMs    *int64 `json:"expiryMs"`
	}
	if err := json.Unmarshal(resp.body, &r); err != nil {
		return Token{}, c.fail(resp.status, "answer is not a JSON session: "+jsonProblem(err, secret.NewRedactor(c.sent)))
	}
	if err := checkToken(r.AccessToken); err != nil {
		return Token{}, c.fail(resp.status, err.Error())
	}
	ttl := s.DefaultTTL
	if r.ExpiryMs != nil {
		// expiryMs is absolute. Measure the lifetime against the
		// service's own clock (its Date header) when it sent one, so a
		// skewed local clock does not shorten or stretch it.
		now := issued
		if d, err := http.ParseTime(resp.date); err == nil {
			now = d
		}
		ttl = time.UnixMilli(*r.ExpiryMs).Sub(now)
		if ttl <= 0 {
			return Token{}, c.fail(resp.status, "expiryMs is in the past: the session is already expired")
		}
		ttl = min(ttl, MaxLifetime)
	}
	return Token{Value: secret.New(r.AccessToken), Expiry: issued.Add(ttl)}, nil
}

// Release ends a session: DELETE /v2/session with its token. A session the
// service no longer knows (404) counts as ended.
func (s *SplunkSession) Release(ctx context.Context, tok Token) error {
	const op = "splunk session logout"
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, joinURL(s.BaseURL, splunkSessionPath), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("X-SF-Token", tok.Value.Reveal())
	_, err = call{op: op, client: s.Client, sent: secret.NewCredentials(tok.Value)}.doResponse(req)
	if e, ok := errors.AsType[*Error](err); ok && e.Status == http.StatusNotFound {
		return nil
	}
	return err
}
