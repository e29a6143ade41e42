package admin

import (
	"time"
)

// credentialView is what /readyz and /status.json say of a route's
// long-lived credential: when it expires and how credproxy knows, both
// absent while that is unknown. It never affects readiness.
type credentialView struct {
	CredentialExpiresAt    time.Time `json:"credential_expires_at,omitzero"`
	CredentialExpirySource string    `json:"credential_expiry_source,omitempty"`
}

// credential returns the credential view of r.
func (r Route) credential() credentialView {
	if r.Credential == nil {
		return credentialView{}
	}
	s := r.Credential()
	return credentialView{CredentialExpiresAt: s.ExpiresAt, CredentialExpirySource: s.Source}
}
