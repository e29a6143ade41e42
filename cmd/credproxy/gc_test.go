package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC: the defaults apply when GOGC and GOMEMLIMIT are unset, and
// the user's own settings win.
func TestTuneGC(t *testing.T) {
	pct := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(pct); debug.SetMemoryLimit(limit) })

	tuneGC(map[string]string{})
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GC percent = %d, want %d", got, defaultGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != defaultMemoryLimit {
		t.Errorf("memory limit = %d, want %d", got, defaultMemoryLimit)
	}
	tuneGC(map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set by the user, yet the GC percent was changed to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set by the user, yet the limit was changed to %d", got)
	}
}
