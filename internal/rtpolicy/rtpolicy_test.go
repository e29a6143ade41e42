package rtpolicy

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zapcore"
)

// TestApply: the defaults apply when GOGC and GOMEMLIMIT are unset, and
// the user's own settings win; Applied says which were set.
func TestApply(t *testing.T) {
	pct := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(pct); debug.SetMemoryLimit(limit) })

	got := Apply(map[string]string{})
	if diff := cmp.Diff(Applied{GCPercent: DefaultGCPercent, MemoryLimit: DefaultMemoryLimit}, got); diff != "" {
		t.Errorf("Applied (-want +got):\n%s", diff)
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("GC percent = %d, want %d", got, DefaultGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != DefaultMemoryLimit {
		t.Errorf("memory limit = %d, want %d", got, DefaultMemoryLimit)
	}
	if got := Apply(map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}); got != (Applied{}) {
		t.Errorf("Applied with the user's settings = %+v, want nothing set", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set by the user, yet the GC percent was changed to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set by the user, yet the limit was changed to %d", got)
	}
}

// TestAppliedLogs: the start line says each value set, or that the
// user's variable decides it.
func TestAppliedLogs(t *testing.T) {
	for _, tc := range []struct {
		desc string
		a    Applied
		want map[string]any
	}{
		{desc: "defaults", a: Applied{GCPercent: 200, MemoryLimit: 48 << 20}, want: map[string]any{"gogc": 200, "gomemlimit_bytes": int64(48 << 20)}},
		{desc: "user's", a: Applied{}, want: map[string]any{"gogc": "from GOGC", "gomemlimit_bytes": "from GOMEMLIMIT"}},
	} {
		enc := zapcore.NewMapObjectEncoder()
		if err := tc.a.MarshalLogObject(enc); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, enc.Fields); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.desc, diff)
		}
	}
}
