package admin

import (
	"time"

	"github.com/credproxy/credproxy/credexpiry"
)

// credentialView is what /readyz and /status.json say of a route's
// long-lived credential: when it expires and how credproxy knows, both
// absent while that is unknown. It never affects readiness.
type credentialView struct {
	CredentialExpiresAt    time.Time `json:"credential_expires_at,omitzero"`
	CredentialExpirySource string    `json:"credential_expiry_source,omitempty"`
}

// ReportCredentialExpiry makes /readyz and the status page show when
// route's long-lived credential expires, as status reports it
// (credexpiry.Watcher.Status). It must be called before the admin
// handler serves.
func (a *Admin) ReportCredentialExpiry(route string, status func() credexpiry.Status) {
	if a.credentials == nil {
		a.credentials = map[string]func() credexpiry.Status{}
	}
	a.credentials[route] = status
}

// credential returns the credential view of route.
func (a *Admin) credential(route string) credentialView {
	st, ok := a.credentials[route]
	if !ok {
		return credentialView{}
	}
	s := st()
	return credentialView{CredentialExpiresAt: s.ExpiresAt, CredentialExpirySource: s.Source}
}
