// Package logtest captures everything a test's components log, so the test
// can assert that no secret or token was written.
package logtest

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Capture is a concurrency-safe buffer of JSON log lines.
type Capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements zapcore.WriteSyncer.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// Sync implements zapcore.WriteSyncer.
func (c *Capture) Sync() error { return nil }

// String returns everything logged so far.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// New returns a debug-level JSON logger writing to a new Capture. When the
// test fails, the captured lines are printed.
func New(t testing.TB) (*zap.Logger, *Capture) {
	c := &Capture{}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, c, zapcore.DebugLevel))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("captured logs:\n%s", c.String())
		}
	})
	return log, c
}

// AssertNoSecrets fails t if text contains any of secrets or any 8-byte
// piece of one (a truncated or partly masked token still leaks).
func AssertNoSecrets(t testing.TB, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if p := leak(text, s); p != "" {
			t.Errorf("%s contains %q, a piece of a secret used in the test", where, p)
		}
	}
}

// leak returns the first piece of secret (all of it when it is shorter than
// 8 bytes) found in text, or "".
func leak(text, secret string) string {
	const piece = 8
	if len(secret) <= piece {
		if secret != "" && strings.Contains(text, secret) {
			return secret
		}
		return ""
	}
	for i := 0; i+piece <= len(secret); i++ {
		if p := secret[i : i+piece]; strings.Contains(text, p) {
			return p
		}
	}
	return ""
}
