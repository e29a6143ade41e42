package main

import (
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/admin"
	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/exchange"
)

// newExpiryWatcher builds the watcher of a route's long-lived credential:
// the configured CREDENTIAL_EXPIRES_AT, CSP's details lookup for
// csp-api-token, and the refresh_expires_in of oauth2-refresh-token's
// answers; it feeds the route's gauge.
func newExpiryWatcher(rc config.Route, src exchange.Source, m *admin.Metrics, log *zap.Logger) *credexpiry.Watcher {
	opts := credexpiry.Options{
		Route:         rc.Name,
		Kind:          string(rc.Auth),
		Configured:    rc.CredentialExpiresAt,
		LookupTimeout: rc.ExchangeTimeout,
		Logger:        log.Named("credexpiry"),
		OnChange:      m.CredentialExpiry(rc.Name),
	}
	if l, ok := src.(credexpiry.Lookup); ok {
		opts.Lookup = l
	}
	w := credexpiry.New(opts)
	if rt, ok := src.(*exchange.OAuth2RefreshToken); ok {
		rt.OnCredentialExpiry = w.Observe
	}
	return w
}
