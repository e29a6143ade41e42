package demo

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// cspTokenDetails is CSP's ApiTokenDetailsDto (docs/protocols.md 1e), fields
// in the reference's order. Token carries the API token itself, as the
// real answer may: a client must never log or show this answer as it is.
type cspTokenDetails struct {
	Acct                 string          `json:"acct"`
	AllowedScopes        map[string]any  `json:"allowedScopes"`
	CreatedAt            int64           `json:"createdAt"`
	Deactivated          bool            `json:"deactivated"`
	DeactivatedUpdatedBy string          `json:"deactivatedUpdatedBy,omitempty"`
	DeactivatedUpdatedOn int64           `json:"deactivatedUpdatedOn,omitempty"`
	Domain               string          `json:"domain"`
	ExpiresAt            json.RawMessage `json:"expiresAt,omitempty"`
	IDPID                string          `json:"idpId"`
	LastUsedAt           int64           `json:"lastUsedAt,omitempty"`
	OrgID                string          `json:"orgId"`
	Scope                []string        `json:"scope"`
	Token                string          `json:"token"`
	TokenID              string          `json:"tokenId"`
	TokenName            string          `json:"tokenName"`
	UserID               string          `json:"userId"`
	Username             string          `json:"username"`
}

// apiTokenExpired reports whether the API token is past
// CSPOptions.APITokenExpiresAt. It takes the lock itself.
func (c *CSP) apiTokenExpired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiTokenExpiredLocked()
}

func (c *CSP) apiTokenExpiredLocked() bool {
	exp := c.opts.APITokenExpiresAt
	return !exp.IsZero() && !c.opts.Now().Before(exp)
}

// serveDetails answers POST CSPDetailsPath as CSP does: a JSON body
// {"tokenValue": "<API TOKEN>"}, no Authorization header, and the token's
// details for an unexpired token it knows, else 404 with the echo of a
// piece of the token that the real service puts in its message.
func (c *CSP) serveDetails(w http.ResponseWriter, r *http.Request) {
	body, status, msg := readDetailsRequest(w, r)
	c.mu.Lock()
	if len(c.details) >= maxRecorded {
		c.details = slices.Delete(c.details, 0, len(c.details)-maxRecorded+1)
	}
	c.details = append(c.details, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Time: c.opts.Now()})
	if !c.refuseOrFaultLocked(w, r, &c.detailsFault, status, msg) {
		return
	}
	var req struct {
		TokenValue string `json:"tokenValue"`
	}
	if json.Unmarshal(body, &req) != nil {
		cspError(w, http.StatusBadRequest, "malformed JSON body")
		return
	}
	if req.TokenValue == "" {
		cspError(w, http.StatusBadRequest, "tokenValue is required")
		return
	}
	c.mu.Lock()
	known := secretEqual(req.TokenValue, c.opts.APIToken) && !c.apiTokenExpiredLocked()
	d := c.detailsLocked()
	c.mu.Unlock()
	if !known {
		writeJSON(w, http.StatusNotFound, cspErrorBody{
			StatusCode: http.StatusNotFound, Message: "invalid_grant: Invalid refresh token: " + mask(req.TokenValue),
			ModuleCode: "540", CSPErrorCode: "540.120-340.800", RequestID: randomHex(8),
		})
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// detailsLocked returns the details of the configured API token.
func (c *CSP) detailsLocked() cspTokenDetails {
	unix := func(t time.Time) int64 {
		if c.opts.DetailsInMillis {
			return t.UnixMilli()
		}
		return t.Unix()
	}
	d := cspTokenDetails{
		Acct: "demo@example.com", AllowedScopes: map[string]any{"allRoles": true},
		CreatedAt: unix(c.created), Domain: "example.com", IDPID: "demo-idp",
		OrgID: c.opts.OrgID, Scope: []string{"openid", "ALL_PERMISSIONS"},
		Token: c.opts.APIToken, TokenID: "demo-token-id", TokenName: "credproxy demo",
		UserID: "demo-user-id", Username: "demo@example.com",
	}
	if !c.lastUsed.IsZero() {
		d.LastUsedAt = unix(c.lastUsed)
	}
	if exp := c.opts.APITokenExpiresAt; !exp.IsZero() {
		d.ExpiresAt, _ = json.Marshal(unix(exp))
	}
	return d
}

// readDetailsRequest checks what the details endpoint requires and reads
// the body. A non-zero status is the refusal to send, with its message.
func readDetailsRequest(w http.ResponseWriter, r *http.Request) (body []byte, status int, msg string) {
	return readPost(w, r, "application/json")
}
