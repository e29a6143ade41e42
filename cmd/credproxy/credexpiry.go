package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/tokencache"
)

// newExpiryWatcher builds the watcher of a route's long-lived credential:
// the configured CREDENTIAL_EXPIRES_AT and CSP's details lookup for
// csp-api-token; it feeds the route's gauge. The refresh_expires_in of
// oauth2-refresh-token's answers reaches it through credentialNews.
func newExpiryWatcher(rc config.Route, src exchange.Source, m *credexpiry.Metrics, log *zap.Logger) *credexpiry.Watcher {
	opts := credexpiry.Options{
		Route:         rc.Name,
		Kind:          string(rc.Auth),
		Configured:    rc.CredentialExpiresAt,
		LookupTimeout: rc.ExchangeTimeout,
		Logger:        log.Named("credexpiry"),
		Metrics:       m,
	}
	if l, ok := src.(credexpiry.Lookup); ok {
		opts.Lookup = l
	}
	return credexpiry.New(opts)
}

// credentialNews returns the route's tokencache OnExchange hook, which
// passes on what an exchange learnt of the long-lived credential
// (exchange.CredentialNews): a rotated refresh token to the log, an
// expiry the answer gave to the watcher.
func credentialNews(rc config.Route, w *credexpiry.Watcher, log *zap.Logger) func(tokencache.Exchange) {
	return func(e tokencache.Exchange) {
		n := e.Credential
		if n == nil {
			return
		}
		if n.Rotated != nil {
			logRotation(rc, log, n.Rotated)
		}
		if n.ExpiryReported {
			w.Observe(n.ExpiresAt)
		}
	}
}

// checkWarnWithin is how close an expiry must be for check to also warn
// on stderr, as a running credproxy logs its 7-day warning.
const checkWarnWithin = 7 * 24 * time.Hour

// credentialReport is what check says of a route's long-lived credential:
// when it expires, from what check could learn (the configuration, CSP's
// details lookup, or what the refresh answered: reported), and a warning
// when that is near or past. A failed lookup is reported, not failed:
// the route works all the same.
func credentialReport(ctx context.Context, rc config.Route, src exchange.Source, reported *time.Time) (detail, warning string) {
	type known struct {
		at  time.Time
		how string
	}
	var all []known
	if !rc.CredentialExpiresAt.IsZero() {
		all = append(all, known{rc.CredentialExpiresAt, rc.Prefix + "CREDENTIAL_EXPIRES_AT"})
	}
	if reported != nil && !reported.IsZero() {
		all = append(all, known{*reported, "refresh_expires_in of the answer"})
	}
	var lookupErr error
	if l, ok := src.(credexpiry.Lookup); ok {
		lctx, cancel := context.WithTimeout(ctx, rc.ExchangeTimeout)
		at, err := l.CredentialExpiry(lctx)
		cancel()
		if lookupErr = err; err == nil && !at.IsZero() {
			all = append(all, known{at, "the identity service"})
		}
	}
	if len(all) == 0 {
		if lookupErr != nil {
			return fmt.Sprintf("credential expiry unknown (lookup failed: %v)", lookupErr), ""
		}
		return "", ""
	}
	first := all[0]
	for _, k := range all[1:] {
		if k.at.Before(first.at) {
			first = k
		}
	}
	left := time.Until(first.at)
	when := first.at.UTC().Format(time.RFC3339)
	if left <= 0 {
		detail = fmt.Sprintf("credential EXPIRED %s (%s ago, from %s)", when, approxDuration(-left), first.how)
		return detail, fmt.Sprintf("route %s: the long-lived credential expired at %s (from %s): rotate it", rc.Name, when, first.how)
	}
	detail = fmt.Sprintf("credential expires %s (in %s, from %s)", when, approxDuration(left), first.how)
	if left < checkWarnWithin {
		warning = fmt.Sprintf("route %s: the long-lived credential expires in %s, at %s (from %s): rotate it before then", rc.Name, approxDuration(left), when, first.how)
	}
	return detail, warning
}

// approxDuration writes d in days and hours, or hours and minutes under a
// day: the precision a person plans a rotation with.
func approxDuration(d time.Duration) string {
	if d >= 24*time.Hour {
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	}
	return d.Round(time.Minute).String()
}
