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

// Hygiene gathers everything a test produces that an operator or a client
// could read (log lines, error strings, /readyz, /metrics, 5xx bodies)
// and, when the test ends, fails it if any of that holds a secret or token
// the test used, or any 8-byte piece of one. Register secrets up front and
// tokens as they are issued; hand over texts as they are produced and
// log captures to be read at the end, so that lines logged during
// shutdown are checked too.
//
// A Hygiene is safe for concurrent use.
type Hygiene struct {
	t        testing.TB
	mu       sync.Mutex
	secrets  []string
	texts    []namedText
	captures []namedCapture
}

type namedText struct{ where, text string }

type namedCapture struct {
	where string
	c     *Capture
}

// NewHygiene returns a Hygiene for t that knows secrets, and arranges for
// the check to run when t ends, after the cleanups registered later (the
// servers and components the test starts).
func NewHygiene(t testing.TB, secrets ...string) *Hygiene {
	h := &Hygiene{t: t}
	h.Secret(secrets...)
	t.Cleanup(h.Check)
	return h
}

// Secret adds values that must not appear anywhere: credentials, and
// tokens issued during the test. Empty values are ignored.
func (h *Hygiene) Secret(values ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range values {
		if v != "" {
			h.secrets = append(h.secrets, v)
		}
	}
}

// Add records a text, e.g. an HTTP answer, under a name for the report.
func (h *Hygiene) Add(where, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.texts = append(h.texts, namedText{where, text})
}

// Err records an error's string; a nil error is ignored.
func (h *Hygiene) Err(where string, err error) {
	if err != nil {
		h.Add(where, err.Error())
	}
}

// Watch records a log capture, read when the check runs.
func (h *Hygiene) Watch(where string, c *Capture) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.captures = append(h.captures, namedCapture{where, c})
}

// Logger is New with its capture watched.
func (h *Hygiene) Logger(where string) (*zap.Logger, *Capture) {
	log, c := New(h.t)
	h.Watch(where, c)
	return log, c
}

// Texts reports how many texts and captures have been gathered, so a test
// can show that its check was not vacuous.
func (h *Hygiene) Texts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.texts) + len(h.captures)
}

// Check asserts now that nothing gathered so far holds a secret. It runs
// by itself when the test ends; calling it earlier checks again then.
func (h *Hygiene) Check() {
	h.t.Helper()
	h.mu.Lock()
	texts := append([]namedText(nil), h.texts...)
	for _, c := range h.captures {
		texts = append(texts, namedText{c.where, c.c.String()})
	}
	secrets := append([]string(nil), h.secrets...)
	h.mu.Unlock()
	for _, tx := range texts {
		AssertNoSecrets(h.t, tx.where, tx.text, secrets...)
	}
}
