// Package testwait is for tests that wait for something another goroutine
// or process does: Eventually polls a condition until it holds or a
// deadline passes. Prefer a channel when the code under test can signal
// the event; poll what it cannot signal (a file on disk, a metric, a
// goroutine count). Never sleep a fixed time as synchronisation: on a
// loaded machine any duration is too short, and on an idle one too long.
package testwait

import "time"

// T is the part of testing.TB that Eventually uses.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Poll intervals: short at first, so a condition that holds soon is seen
// soon, then longer, so a slow one does not spin.
const (
	firstInterval = time.Millisecond
	maxInterval   = 50 * time.Millisecond
)

// Eventually calls cond until it reports ok, and fails the test with
// t.Fatalf, naming timeout and cond's last why, when timeout passes first.
// why says what was seen ("2 requests, want 1"); it is read only on
// failure. Like t.Fatal, Eventually must be called from the goroutine
// running the test. timeout bounds a hang, it asserts no speed: make it
// generous (seconds), as the machine may be loaded.
func Eventually(t T, timeout time.Duration, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for interval := firstInterval; ; interval = min(2*interval, maxInterval) {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not so after %v: %s", timeout, why)
			return // a T whose Fatalf returns
		}
		time.Sleep(interval)
	}
}
