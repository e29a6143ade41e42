package credexpiry

import (
	"context"
	"fmt"
	"time"
)

// ReportOptions are what a one-shot look at a route's credential expiry
// (credproxy check) knows and may ask.
type ReportOptions struct {
	// Route names the route in the warning.
	Route string
	// Configured is the configured expiry (CREDENTIAL_EXPIRES_AT); zero
	// when none. ConfiguredBy names the variable, for the report.
	Configured   time.Time
	ConfiguredBy string
	// Reported is the expiry an exchange's answer gave
	// (refresh_expires_in); zero when none.
	Reported time.Time
	// Lookup, when set, is asked once, bounded by LookupTimeout
	// (default 10 s).
	Lookup        Lookup
	LookupTimeout time.Duration
}

// Report is what credproxy check says of a route's long-lived
// credential: when it expires, the earliest of what it could learn, and
// a warning from the thresholds a Watcher warns at (30, 7 and 1 days
// left, and expired), so that check and a running credproxy never
// disagree about whether an expiry is worth a warning. A failed lookup
// is reported in detail, not as a warning: the route works all the same.
// Both are empty when nothing is known.
//
// Unlike Observe, Report takes an answer's expiry at its word: check
// sees one answer, and cannot tell a deadline from a sliding window.
func Report(ctx context.Context, opts ReportOptions) (detail, warning string) {
	type known struct {
		at  time.Time
		how string
	}
	var all []known
	if !opts.Configured.IsZero() {
		all = append(all, known{opts.Configured, opts.ConfiguredBy})
	}
	if !opts.Reported.IsZero() {
		all = append(all, known{opts.Reported, "refresh_expires_in of the answer"})
	}
	var lookupErr error
	if opts.Lookup != nil {
		timeout := opts.LookupTimeout
		if timeout <= 0 {
			timeout = defaultLookupTimeout
		}
		lctx, cancel := context.WithTimeout(ctx, timeout)
		at, err := opts.Lookup.CredentialExpiry(lctx)
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
	switch levelOf(left) {
	case levelExpired:
		detail = fmt.Sprintf("credential EXPIRED %s (%s ago, from %s)", when, approxDuration(-left), first.how)
		return detail, fmt.Sprintf("route %s: the long-lived credential expired at %s (from %s): rotate it", opts.Route, when, first.how)
	case levelNone:
	default:
		warning = fmt.Sprintf("route %s: the long-lived credential expires in %s, at %s (from %s): rotate it before then", opts.Route, approxDuration(left), when, first.how)
	}
	detail = fmt.Sprintf("credential expires %s (in %s, from %s)", when, approxDuration(left), first.how)
	return detail, warning
}

// approxDuration writes d in days and hours, or hours and minutes under a
// day: the precision a person plans a rotation with.
func approxDuration(d time.Duration) string {
	if d >= day {
		return fmt.Sprintf("%dd %dh", d/day, d%day/time.Hour)
	}
	return d.Round(time.Minute).String()
}
