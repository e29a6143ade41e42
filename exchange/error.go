package exchange

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error is a failure reported by an identity service: a non-2xx answer, or a
// 2xx answer that is not a usable token.
type Error struct {
	// Op says which exchange failed, e.g. "csp api-token exchange".
	Op string
	// Status is the HTTP status code of the answer.
	Status int
	// Code is the service's machine-readable error code when it sent one
	// (RFC 6749 "error", CSP "cspErrorCode").
	Code string
	// Message is the service's human-readable message (RFC 6749
	// "error_description", CSP and Splunk "message"), or a description of
	// what was wrong with a 2xx answer. It never contains a credential
	// sent, in any encoding or piece of 8 bytes or more.
	Message string
	// RequestID is the service's request ID when it sent one; quote it to
	// the service's support.
	RequestID string
	// RetryAfter is the delay the service asked for with Retry-After (429,
	// 503), zero when it did not ask.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	fmt.Fprintf(&b, ": HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (requestId ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Permanent reports whether retrying with the same credential cannot help:
// the service rejected the credential or the request (4xx other than 408
// Request Timeout, 425 Too Early and 429 Too Many Requests), or redirected
// it (a wrong base URL). A 2xx answer that is not a usable token, a 5xx and
// network errors are transient.
func (e *Error) Permanent() bool {
	switch {
	case e.Status < 300 || e.Status >= 500:
		return false
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooEarly, e.Status == http.StatusTooManyRequests:
		return false
	}
	return true
}

// IsPermanent reports whether err is, or wraps, an *Error for which
// retrying with the same credential cannot help.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent()
}

// RetryAfter returns the delay the service asked for in err, if any.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// registeredCodes are the error codes of OAuth 2.0's registry that a token
// endpoint may answer: RFC 6749 (5.2 and 4.1.2.1), RFC 6750, RFC 8693
// and RFC 8628. They are fixed words, safe to show to anyone.
var registeredCodes = [...]string{
	"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "access_denied", "server_error",
	"temporarily_unavailable", "invalid_token", "insufficient_scope", "invalid_target",
	"authorization_pending", "slow_down", "expired_token",
}

// OAuthCode returns the service's error code when it is one of OAuth
// 2.0's registered codes (RFC 6749 and its extensions), from Code or, as
// CSP writes it, from the start of Message ("invalid_grant: ..." or the
// code alone); ""
// otherwise. Unlike Code and Message, which are the service's own text
// (scrubbed of what credproxy knows to scrub, but free to echo a secret in
// an encoding no redactor knows), it can be shown to a proxy's clients.
func (e *Error) OAuthCode() string {
	for _, c := range registeredCodes {
		if strings.EqualFold(e.Code, c) {
			return c
		}
	}
	for _, c := range registeredCodes {
		if m, ok := strings.CutPrefix(strings.ToLower(e.Message), c); ok && (m == "" || m[0] == ':') {
			return c
		}
	}
	return ""
}
