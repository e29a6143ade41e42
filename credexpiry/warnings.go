package credexpiry

import (
	"time"

	"go.uber.org/zap"
)

// The warning levels of an expiry, by the time left: none, at most 30
// days, 7 days, 1 day, and expired.
const (
	levelNone = iota
	level30d
	level7d
	level1d
	levelExpired
)

// levelStart returns the time left at which level begins; a level is
// reached when the time left is at most that (at exactly 7 days left, the
// 7-day warning).
func levelStart(level int) time.Duration {
	switch level {
	case level30d:
		return 30 * day
	case level7d:
		return 7 * day
	case level1d:
		return day
	}
	return 0
}

// levelOf is the level of an expiry with left to go.
func levelOf(left time.Duration) int {
	switch {
	case left <= 0:
		return levelExpired
	case left <= levelStart(level1d):
		return level1d
	case left <= levelStart(level7d):
		return level7d
	case left <= levelStart(level30d):
		return level30d
	}
	return levelNone
}

// thresholdName names a warning level in the log line's threshold field.
func thresholdName(level int) string {
	switch level {
	case level30d:
		return "30d"
	case level7d:
		return "7d"
	case level1d:
		return "1d"
	}
	return "expired"
}

// checkWarnings logs the warning of the level the current expiry has
// reached at now, if that level was not logged yet, and returns when the
// next level begins (zero when there is none to wait for).
//
// A level is logged once per process; when several are reached at once
// (credproxy starts with 5 days left) only the highest is. An expiry that
// moves later (the credential was rotated) re-arms the levels it is no
// longer at, so that the new credential is warned about in its turn.
func (w *Watcher) checkWarnings(now time.Time) time.Time {
	w.mu.Lock()
	cur := w.current
	if cur.ExpiresAt.IsZero() {
		w.warned = levelNone
		w.mu.Unlock()
		return time.Time{}
	}
	left := cur.ExpiresAt.Sub(now)
	lvl := levelOf(left)
	log := lvl > w.warned
	w.warned = lvl
	w.mu.Unlock()

	if log {
		fields := []zap.Field{
			zap.Time("expires_at", cur.ExpiresAt), zap.String("source", cur.Source),
			zap.String("threshold", thresholdName(lvl)), zap.Int("days_left", int(max(0, left)/day)),
		}
		if lvl == levelExpired {
			w.log.Error("the route's long-lived credential has expired: the identity service will refuse it; rotate it",
				append(fields, zap.Duration("expired_for", (-left).Round(time.Second)))...)
		} else {
			w.log.Warn("the route's long-lived credential expires soon: rotate it before then",
				append(fields, zap.Duration("expires_in", left.Round(time.Second)))...)
		}
	}
	if lvl == levelExpired {
		return time.Time{}
	}
	return cur.ExpiresAt.Add(-levelStart(lvl + 1))
}
