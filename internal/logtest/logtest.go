// Package logtest captures everything a test's components log, so the test
// can assert that no secret or token was written.
package logtest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

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

// AssertNoSecrets fails t if text holds any of secrets, or any 8-byte
// piece of one (a truncated or partly masked token still leaks), in any
// encoding a log line, URL or header could carry it in: as it is,
// query- or path-escaped, hex, or base64 (standard or URL alphabet, at any
// alignment inside a longer encoded value such as a Basic pair). The
// comparison ignores case, spaces and control characters.
func AssertNoSecrets(t testing.TB, where, text string, secrets ...string) {
	t.Helper()
	if p, form := Leak(text, secrets...); p != "" {
		t.Errorf("%s contains %q, %s of a secret used in the test", where, p, form)
	}
}

// Leak returns the first piece of secrets that AssertNoSecrets would find
// in text, normalised, and the name of its encoding; "", "" when none.
func Leak(text string, secrets ...string) (piece, form string) {
	return newPieces(secrets).find(text)
}

// pieceLen is the length of the smallest piece of a secret that counts as
// a leak.
const pieceLen = 8

// pieces maps every normalised piece of the secrets' encodings to the
// name of its encoding. Secrets shorter than pieceLen are kept whole.
type pieces struct {
	set   map[string]string
	short map[string]string
}

func newPieces(secrets []string) pieces {
	ps := pieces{set: map[string]string{}, short: map[string]string{}}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, f := range encodings(s) {
			v := normalise(f.value)
			if len(v) < pieceLen {
				if _, ok := ps.short[v]; !ok {
					ps.short[v] = f.name
				}
				continue
			}
			for i := 0; i+pieceLen <= len(v); i++ {
				if _, ok := ps.set[v[i:i+pieceLen]]; !ok {
					ps.set[v[i:i+pieceLen]] = f.name
				}
			}
		}
	}
	return ps
}

// find returns the first piece found in text and its encoding's name, or
// "", "". One pass over text, whatever the number of secrets.
func (ps pieces) find(text string) (piece, form string) {
	if p, f := ps.findNormalised(normalise(text)); p != "" {
		return p, f
	}
	// A secret with every byte percent-encoded (%41%42...), which no
	// encoder of the standard library writes but a service might.
	if strings.Contains(text, "%") {
		if p, _ := ps.findNormalised(normalise(percentDecodeASCII(text))); p != "" {
			return p, "a percent-encoded piece"
		}
	}
	return "", ""
}

// percentDecodeASCII decodes the percent-escapes of ASCII characters in s
// and leaves everything else as it is.
func percentDecodeASCII(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && v < utf8.RuneSelf {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (ps pieces) findNormalised(n string) (piece, form string) {
	for v, name := range ps.short {
		if strings.Contains(n, v) {
			return v, name
		}
	}
	for i := 0; i+pieceLen <= len(n); i++ {
		if name, ok := ps.set[n[i:i+pieceLen]]; ok {
			return n[i : i+pieceLen], name
		}
	}
	return "", ""
}

type encoded struct{ name, value string }

// encodings returns s in every form checked for. A base64 value is cut to
// the characters that depend on s alone: the first group of four also
// encodes what precedes s, the last what follows it.
func encodings(s string) []encoded {
	out := []encoded{
		{"a piece", s},
		{"a query-escaped piece", url.QueryEscape(s)},
		{"a path-escaped piece", url.PathEscape(s)},
		{"a hex piece", hex.EncodeToString([]byte(s))},
	}
	for _, enc := range []struct {
		name string
		enc  *base64.Encoding
	}{{"a base64 piece", base64.StdEncoding}, {"a base64url piece", base64.URLEncoding}} {
		for lead := range 3 {
			e := enc.enc.EncodeToString(append(make([]byte, lead), s...))
			lo, hi := 0, len(e)-4
			if lead > 0 {
				lo = 4
			}
			if hi-lo >= pieceLen {
				out = append(out, encoded{enc.name, e[lo:hi]})
			}
		}
	}
	return out
}

// normalise lower-cases s and takes out spaces, control and format
// characters, so that a secret split by a line break or a zero-width
// character, or shown upper-cased, is still found.
func normalise(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s))
}

// Hygiene gathers everything a test produces that an operator or a client
// could read (log lines, error strings, /readyz, /metrics, 5xx bodies)
// and, when the test ends, fails it if any of that holds a secret or token
// the test used, or any 8-byte piece of one, in any encoding that
// AssertNoSecrets looks for. Register secrets up front and
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
	ps := newPieces(h.secrets)
	h.mu.Unlock()
	for _, tx := range texts {
		if p, form := ps.find(tx.text); p != "" {
			h.t.Errorf("%s contains %q, %s of a secret or token used in the test", tx.where, p, form)
		}
	}
}
