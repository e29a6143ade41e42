package tokencache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/exchange"
)

// TestClientDetailHoldsNoServiceText: what a client of the proxy is told
// (UnavailableError's Detail and Error) is credproxy's own reason with the
// service's status and registered OAuth 2.0 error code, never the
// service's message or an unregistered code, which may echo the secret
// in an encoding no redactor knows. The log's text (Cause, Status's
// LastError) keeps the message.
func TestClientDetailHoldsNoServiceText(t *testing.T) {
	tcs := []struct {
		desc string
		err  error
		want string
	}{
		{desc: "rejected with a registered code", err: &exchange.Error{Op: "oauth2 client-credentials exchange", Status: 401, Code: "invalid_client", Message: "zebracorn: bad secret"},
			want: "token exchange failed: identity service answered 401 (invalid_client)"},
		{desc: "an unregistered code is service text", err: &exchange.Error{Op: "csp api-token exchange", Status: 400, Code: "zebracorn-540", Message: "zebracorn"},
			want: "token exchange failed: identity service answered 400"},
		{desc: "CSP puts the RFC 6749 code at the start of its message", err: &exchange.Error{Op: "csp api-token exchange", Status: 404, Code: "540.120-340.800", Message: "invalid_grant: Invalid refresh token: zebracorn"},
			want: "token exchange failed: identity service answered 404 (invalid_grant)"},
		{desc: "a 2xx answer that is no token", err: &exchange.Error{Op: "oauth2", Status: 200, Message: "zebracorn is not a token"},
			want: "token exchange failed: identity service answered 200 without a usable token"},
		{desc: "unavailable", err: &exchange.Error{Op: "oauth2", Status: 503, Code: "temporarily_unavailable", Message: "zebracorn"},
			want: "token exchange failed: identity service answered 503 (temporarily_unavailable)"},
		{desc: "a transport error quotes the answer", err: errors.New(`oauth2: malformed HTTP status code "zebracorn"`),
			want: "token exchange failed: no usable answer from the identity service (see credproxy's log)"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := &fakeSource{fail: tc.err}
				c := start(t, src, Options{Route: "r", TokenWait: time.Second})
				_, err := c.Token(context.Background())
				var ue *UnavailableError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want *UnavailableError", err)
				}
				if !strings.HasPrefix(ue.Detail, tc.want) || strings.Contains(ue.Error(), "zebracorn") {
					t.Errorf("Detail = %q, Error() = %q; want %q and no service text", ue.Detail, ue.Error(), tc.want)
				}
				if ue.Cause == nil || !strings.Contains(ue.Cause.Error(), "zebracorn") {
					t.Errorf("Cause = %v, want the service's text", ue.Cause)
				}
				if st := c.Status(); !strings.Contains(st.LastError, "zebracorn") {
					t.Errorf("Status().LastError = %q, want the service's text", st.LastError)
				}
			})
		})
	}
}
