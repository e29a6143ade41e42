package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/credproxy/credproxy/internal/secret"
)

// cspDetailsPath answers the details of a user API token, relative to the
// base URL (docs/protocols.md 1e).
const cspDetailsPath = "csp/gateway/am/api/auth/api-tokens/details"

// millisAbove tells the units of CSP's times apart: the reference says
// seconds since 1970, public clients read milliseconds, and a number over
// it is milliseconds (1e12 seconds is the year 33658; 1e12 milliseconds
// is 2001).
const millisAbove = 1e12

// CredentialExpiry asks CSP when the API token itself expires
// (docs/protocols.md 1e): POST api-tokens/details with the token in a JSON
// body and no Authorization header. The zero time and a nil error mean
// that the answer gives no expiry: the token does not expire.
//
// The answer may carry the API token in its "token" field; nothing of it
// but expiresAt is read, and every text of the service that goes into an
// error is scrubbed of the token as for an exchange. A failure is an
// *Error (404: CSP does not know the token, an expired one included, or
// an on-premises identity service lacks the endpoint; 429 with its
// RetryAfter) or a transport error.
func (s *CSPAPIToken) CredentialExpiry(ctx context.Context) (time.Time, error) {
	const op = "csp api-token details"
	tok, err := s.APIToken.Load()
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	body, err := json.Marshal(struct {
		TokenValue string `json:"tokenValue"`
	}{tok.Reveal()})
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, joinURL(s.BaseURL, cspDetailsPath), bytes.NewReader(body))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	c := call{op: op, client: s.Client, sent: secret.NewCredentials(tok)}
	answer, err := c.do(req)
	if err != nil {
		return time.Time{}, err
	}
	return c.parseDetails(answer)
}

// parseDetails reads expiresAt from an ApiTokenDetailsDto: a number of
// seconds or milliseconds since 1970 (or, leniently, a string holding
// one); absent, null, 0 or negative means no expiry.
func (c call) parseDetails(body []byte) (time.Time, error) {
	c = c.withAnswer(body)
	r := secret.NewRedactor(c.sent)
	var d struct {
		ExpiresAt json.RawMessage `json:"expiresAt"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return time.Time{}, c.fail(http.StatusOK, "answer is not JSON token details: "+jsonProblem(err, r))
	}
	raw := strings.TrimSpace(string(d.ExpiresAt))
	if raw == "" || raw == "null" {
		return time.Time{}, nil
	}
	if unq, err := strconv.Unquote(raw); err == nil {
		raw = strings.TrimSpace(unq)
	}
	v, err := strconv.ParseFloat(raw, 64)
	switch {
	case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
		return time.Time{}, c.fail(http.StatusOK, fmt.Sprintf("expiresAt %.40q is not a time in seconds or milliseconds", r.Clean(raw)))
	case v <= 0:
		return time.Time{}, nil
	case v > millisAbove*1e3:
		// Past the year 33658 even in milliseconds: no real expiry.
		return time.Time{}, c.fail(http.StatusOK, fmt.Sprintf("expiresAt %.0f is out of range", v))
	case v > millisAbove:
		return time.UnixMilli(int64(v)).UTC(), nil
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
