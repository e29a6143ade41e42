// Package logtest captures everything a test's components log, so the test
// can assert that no secret or token was written.
package logtest

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf16"
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
// name of its encoding. A piece is pieceLen bytes long, or longer for an
// encoding that spends more than two characters on a byte (see
// encoded.min). Values shorter than their piece are kept whole.
type pieces struct {
	// set is keyed by a piece's bytes read as a little-endian uint64.
	set map[uint64]string
	// longer holds the longer pieces by their length.
	longer map[int]map[string]string
	short  map[string]string
}

func newPieces(secrets []string) pieces {
	ps := pieces{set: make(map[uint64]string, 64*len(secrets)), longer: map[int]map[string]string{}, short: map[string]string{}}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, f := range encodings(s) {
			v, n := normalise(f.value), max(pieceLen, f.min)
			switch {
			case len(v) < n:
				if _, ok := ps.short[v]; !ok && v != "" {
					ps.short[v] = f.name
				}
			case n == pieceLen:
				for i := 0; i+n <= len(v); i++ {
					k := binary.LittleEndian.Uint64([]byte(v[i : i+n]))
					if _, ok := ps.set[k]; !ok {
						ps.set[k] = f.name
					}
				}
			default:
				m := ps.longer[n]
				if m == nil {
					m = map[string]string{}
					ps.longer[n] = m
				}
				for i := 0; i+n <= len(v); i++ {
					if _, ok := m[v[i:i+n]]; !ok {
						m[v[i:i+n]] = f.name
					}
				}
			}
		}
	}
	return ps
}

// find returns the first piece found in text and its encoding's name, or
// "", "". One pass over text per decoding tried, whatever the number of
// secrets.
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
	// Backslash escapes (\u0041, \x41, a surrogate pair for a character
	// beyond U+FFFF) and HTML character references (&#65; &#x41; &amp;).
	if strings.ContainsAny(text, `\&`) {
		if p, _ := ps.findNormalised(normalise(decodeEscapes(text))); p != "" {
			return p, "an escaped piece"
		}
	}
	// Decimal bytes separated by white space (65 66 67): normalising
	// takes the spaces out, and digits run together are not looked for
	// (a log's timestamps would match them by chance), so the spaces
	// become the commas the decimal form is looked for with.
	if strings.ContainsFunc(text, unicode.IsSpace) {
		if p, _ := ps.findNormalised(normalise(strings.Join(strings.Fields(text), ","))); p != "" {
			return p, "a piece of its decimal bytes"
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

// decodeEscapes decodes, in s, the backslash escapes \uXXXX (joining
// surrogate pairs), \UXXXXXXXX and \xXX, and the HTML character
// references &#NNN; &#xHHH; (the semicolon optional) and the five of
// XML. Everything else stays as it is.
func decodeEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], `\x`) {
			// A byte, which may be part of a character: written as it
			// is, so that bytes escaped one by one make the character.
			if v, n := number(s[i:], 2, 2, 2, 16); n > 0 {
				b.WriteByte(byte(v))
				i += n
				continue
			}
		}
		r, n := escapeAt(s[i:])
		if n == 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		if utf16.IsSurrogate(r) {
			if r2, n2 := escapeAt(s[i+n:]); n2 > 0 && utf16.IsSurrogate(r2) {
				if j := utf16.DecodeRune(r, r2); j != utf8.RuneError {
					r, n = j, n+n2
				}
			}
		}
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

// escapeAt reads the escape or character reference at the start of s;
// n is 0 when there is none.
func escapeAt(s string) (r rune, n int) {
	switch {
	case strings.HasPrefix(s, `\u`):
		return number(s, 2, 4, 4, 16)
	case strings.HasPrefix(s, `\U`):
		return number(s, 2, 8, 8, 16)
	case strings.HasPrefix(s, "&#x"), strings.HasPrefix(s, "&#X"):
		r, n = number(s, 3, 1, 6, 16)
	case strings.HasPrefix(s, "&#"):
		r, n = number(s, 2, 1, 7, 10)
	case strings.HasPrefix(s, "&"):
		for _, e := range [...]string{"&amp;&", "&lt;<", "&gt;>", "&quot;\"", "&apos;'"} {
			if name := e[:len(e)-1]; strings.HasPrefix(s, name) {
				return rune(e[len(e)-1]), len(name)
			}
		}
		return 0, 0
	default:
		return 0, 0
	}
	if n > 0 && n < len(s) && s[n] == ';' {
		n++
	}
	return r, n
}

// number reads from s[skip:] between least and most digits of base; n
// is 0 when there are fewer than least.
func number(s string, skip, least, most, base int) (rune, int) {
	end := skip
	for end < len(s) && end-skip < most && digitValue(s[end]) < base {
		end++
	}
	if end-skip < least {
		return 0, 0
	}
	v, err := strconv.ParseUint(s[skip:end], base, 32)
	if err != nil || v > unicode.MaxRune {
		return 0, 0
	}
	return rune(v), end
}

func digitValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return 99
}

func (ps pieces) findNormalised(n string) (piece, form string) {
	for v, name := range ps.short {
		if strings.Contains(n, v) {
			return v, name
		}
	}
	for i := 0; i+pieceLen <= len(n); i++ {
		if name, ok := ps.set[binary.LittleEndian.Uint64([]byte(n[i:i+pieceLen]))]; ok {
			return n[i : i+pieceLen], name
		}
	}
	for l, m := range ps.longer {
		for i := 0; i+l <= len(n); i++ {
			if name, ok := m[n[i:i+l]]; ok {
				return n[i : i+l], name
			}
		}
	}
	return "", ""
}

// encoded is a secret in one encoding. A piece of it counts when it
// encodes at least 4 bytes of the secret, as 8 hex digits do: min is the
// length of such a piece where that is more than pieceLen (hex with
// separators, decimal, UTF-16), so that a clock's "00:30:00" is not
// taken for the UTF-16 of a "0".
type encoded struct {
	name, value string
	min         int
}

// encodings returns s in every form checked for. A base64 or base32 value
// is cut to the characters that depend on s alone, at each alignment s
// can have inside a longer encoded value: the first group also encodes
// what precedes s, the last what follows it. At alignment 0 it is also
// kept whole, for a secret shorter than a piece.
func encodings(s string) []encoded {
	b := []byte(s)
	out := []encoded{
		{"a piece", s, 0},
		{"a query-escaped piece", url.QueryEscape(s), 0},
		{"a path-escaped piece", url.PathEscape(s), 0},
		{"a reversed piece", reversed(s), 0},
		{"a piece of its decimal bytes", joinBytes(b, "%d", ","), 11},
		{"a hex piece", hex.EncodeToString(b), 0},
		{"a hex piece", joinBytes(b, "%02x", ":"), 11},
		{"a hex piece", joinBytes(b, "%02x", "-"), 11},
	}
	out = append(out, grouped("a base64 piece", base64.StdEncoding.EncodeToString, b, 3, 4, 0)...)
	out = append(out, grouped("a base64url piece", base64.URLEncoding.EncodeToString, b, 3, 4, 0)...)
	out = append(out, grouped("a base32 piece", base32.StdEncoding.EncodeToString, b, 5, 8, 0)...)
	for _, v := range []struct {
		name string
		b    []byte
	}{{" of its UTF-16LE", utf16Bytes(s, binary.LittleEndian)}, {" of its UTF-16BE", utf16Bytes(s, binary.BigEndian)}} {
		out = append(out,
			encoded{"a hex piece" + v.name, hex.EncodeToString(v.b), 16},
			encoded{"a hex piece" + v.name, joinBytes(v.b, "%02x", ":"), 23},
			encoded{"a hex piece" + v.name, joinBytes(v.b, "%02x", "-"), 23})
		out = append(out, grouped("a base64 piece"+v.name, base64.StdEncoding.EncodeToString, v.b, 3, 4, 12)...)
		out = append(out, grouped("a base64url piece"+v.name, base64.URLEncoding.EncodeToString, v.b, 3, 4, 12)...)
	}
	return out
}

// grouped returns the characters of encode(b) that depend on b alone, at
// each of the group alignments b can have: an encoding that turns group
// bytes into width characters; least is their encoded.min.
func grouped(name string, encode func([]byte) string, b []byte, group, width, least int) []encoded {
	whole := encode(b)
	out := []encoded{{name, whole, least}, {name, strings.TrimRight(whole, "="), least}}
	for lead := range group {
		e := encode(append(make([]byte, lead), b...))
		lo, hi := 0, len(e)-width
		if lead > 0 {
			lo = width
		}
		if hi-lo >= max(pieceLen, least) {
			out = append(out, encoded{name, e[lo:hi], least})
		}
	}
	return out
}

func joinBytes(b []byte, format, sep string) string {
	out := make([]byte, 0, 4*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, sep...)
		}
		out = fmt.Appendf(out, format, c)
	}
	return string(out)
}

func utf16Bytes(s string, order binary.AppendByteOrder) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		out = order.AppendUint16(out, u)
	}
	return out
}

func reversed(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

// normalise lower-cases s and takes out spaces, control and format
// characters, so that a secret split by a line break or a zero-width
// character, or shown upper-cased, is still found. Bytes of invalid
// UTF-8 are kept as they are: one may be the first byte of a character
// of a secret, cut after it.
func normalise(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteByte(s[i])
		case unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r):
		default:
			b.WriteRune(unicode.ToLower(r))
		}
		i += n
	}
	return b.String()
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
