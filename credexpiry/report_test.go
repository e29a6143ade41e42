package credexpiry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/internal/logtest"
)

// lookupFunc is a Lookup.
type lookupFunc func(context.Context) (time.Time, error)

func (f lookupFunc) CredentialExpiry(ctx context.Context) (time.Time, error) { return f(ctx) }

// watcherWarns reports whether a Watcher that knows the expiry at logs a
// warning or an error at once.
func watcherWarns(t *testing.T, at time.Time) bool {
	t.Helper()
	log, logs := logtest.New(t)
	w := New(Options{Route: "r", Configured: at, Logger: log})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	synctest.Wait()
	cancel()
	<-done
	s := logs.String()
	return strings.Contains(s, `"level":"warn"`) || strings.Contains(s, `"level":"error"`)
}

// TestReportWarnsAsTheWatcher: check's report warns exactly when a
// running credproxy's watcher does, to the nanosecond at each threshold:
// 30, 7 and 1 days left, and expired. With 20 days left both warn (check
// used to warn from 7 days only).
func TestReportWarnsAsTheWatcher(t *testing.T) {
	for _, tc := range []struct {
		desc string
		left time.Duration
		warn string
	}{
		{desc: "40 days", left: 40 * day},
		{desc: "just over 30 days", left: 30*day + 1},
		{desc: "30 days", left: 30 * day, warn: "expires in 30d 0h"},
		{desc: "20 days", left: 20 * day, warn: "expires in 20d 0h"},
		{desc: "7 days", left: 7 * day, warn: "expires in 7d 0h"},
		{desc: "1 day", left: day, warn: "expires in 1d 0h"},
		{desc: "a nanosecond", left: 1, warn: "expires in 0s"},
		{desc: "expired now", left: 0, warn: "expired at"},
		{desc: "expired a day ago", left: -day, warn: "expired at"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				at := time.Now().Add(tc.left)
				_, warning := Report(t.Context(), ReportOptions{Route: "r", Configured: at, ConfiguredBy: "CREDPROXY_CREDENTIAL_EXPIRES_AT"})
				if tc.warn == "" && warning != "" || tc.warn != "" && !strings.Contains(warning, tc.warn) {
					t.Errorf("warning %q, want one with %q", warning, tc.warn)
				}
				if w := watcherWarns(t, at); w != (warning != "") {
					t.Errorf("the watcher warns: %v; check's report: %q", w, warning)
				}
			})
		})
	}
}

// TestReport: the earliest expiry known wins and is named by where it
// came from; a failed lookup is said in the detail, never warned.
func TestReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		lookup := func(at time.Time, err error) Lookup {
			return lookupFunc(func(context.Context) (time.Time, error) { return at, err })
		}
		for _, tc := range []struct {
			desc         string
			opts         ReportOptions
			detail, warn string
		}{
			{desc: "nothing known", opts: ReportOptions{}},
			{desc: "lookup fails", opts: ReportOptions{Lookup: lookup(time.Time{}, errors.New("HTTP 404"))},
				detail: "credential expiry unknown (lookup failed: HTTP 404)"},
			{desc: "lookup says never", opts: ReportOptions{Lookup: lookup(time.Time{}, nil)}},
			{desc: "configured earliest", opts: ReportOptions{Configured: now.Add(26 * time.Hour), ConfiguredBy: "X_EXPIRES_AT", Lookup: lookup(now.Add(3*day), nil)},
				detail: "(in 1d 2h, from X_EXPIRES_AT)", warn: "route r: the long-lived credential expires in 1d 2h"},
			{desc: "lookup earliest", opts: ReportOptions{Configured: now.Add(40 * day), ConfiguredBy: "X", Lookup: lookup(now.Add(3*day+time.Hour), nil)},
				detail: "(in 3d 1h, from the identity service)", warn: "expires in 3d 1h"},
			{desc: "answer earliest", opts: ReportOptions{Reported: now.Add(50 * day), Lookup: lookup(now.Add(60*day), nil)},
				detail: "(in 50d 0h, from refresh_expires_in of the answer)"},
			{desc: "expired", opts: ReportOptions{Configured: now.Add(-2 * time.Hour), ConfiguredBy: "X"},
				detail: "credential EXPIRED", warn: "expired at"},
		} {
			tc.opts.Route = "r"
			detail, warning := Report(t.Context(), tc.opts)
			if tc.detail == "" && detail != "" || !strings.Contains(detail, tc.detail) {
				t.Errorf("%s: detail %q, want %q", tc.desc, detail, tc.detail)
			}
			if tc.warn == "" && warning != "" || !strings.Contains(warning, tc.warn) {
				t.Errorf("%s: warning %q, want %q", tc.desc, warning, tc.warn)
			}
		}
	})
}
