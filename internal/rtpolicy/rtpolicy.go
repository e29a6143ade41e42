package rtpolicy

import (
	"runtime/debug"

	"go.uber.org/zap/zapcore"
)

// GC defaults, measured with `go run ./bench` (bench/README.md): GOGC=200
// took a fifth off credproxy's CPU per request in reverse mode at 32
// connections (82 -> 67 µs), since a proxy's heap is small and short-lived
// and collecting it half as often halves the collector's share. The soft
// memory limit keeps the resident size within its 64 MiB target at 256
// connections: with GOGC=200 and a 64 MiB limit it reached 63.6 MiB, so
// the limit is 48 MiB, and near it the collector runs as often as it
// must.
const (
	// DefaultGCPercent is the GC target unless GOGC is set.
	DefaultGCPercent = 200
	// DefaultMemoryLimit is the soft memory limit, in bytes, unless
	// GOMEMLIMIT is set.
	DefaultMemoryLimit = 48 << 20
)

// Applied is what Apply set. A zero field means Apply left that setting
// to the runtime, which read the user's variable itself.
type Applied struct {
	// GCPercent is the GC target set (debug.SetGCPercent); zero when
	// GOGC was set.
	GCPercent int
	// MemoryLimit is the soft memory limit set, in bytes
	// (debug.SetMemoryLimit); zero when GOMEMLIMIT was set.
	MemoryLimit int64
}

// Apply applies the runtime policy to this process, unless env (the
// process environment) sets GOGC or GOMEMLIMIT, which the Go runtime has
// read itself at start and which then win. It returns what it set.
func Apply(env map[string]string) Applied {
	var a Applied
	if _, set := env["GOGC"]; !set {
		debug.SetGCPercent(DefaultGCPercent)
		a.GCPercent = DefaultGCPercent
	}
	if _, set := env["GOMEMLIMIT"]; !set {
		debug.SetMemoryLimit(DefaultMemoryLimit)
		a.MemoryLimit = DefaultMemoryLimit
	}
	return a
}

// MarshalLogObject logs what was set: each setting's value, or that the
// user's variable decides it.
func (a Applied) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if a.GCPercent != 0 {
		enc.AddInt("gogc", a.GCPercent)
	} else {
		enc.AddString("gogc", "from GOGC")
	}
	if a.MemoryLimit != 0 {
		enc.AddInt64("gomemlimit_bytes", a.MemoryLimit)
	} else {
		enc.AddString("gomemlimit_bytes", "from GOMEMLIMIT")
	}
	return nil
}
