package exchange

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/credproxy/credproxy/internal/secret"
)

// redactedMark replaces whatever the redactor takes out.
const redactedMark = "[redacted]"

// pieceLen is the length of the smallest piece of a credential that is
// redacted: any 8 bytes of a credential, or of one of its encodings, are
// taken out of a service's text, so a truncated or partly masked echo
// leaks nothing either. A credential shorter than that is redacted whole.
const pieceLen = 8

// maxScrubInput bounds how much of a service's text is examined: far more
// than the maxMessageLen kept, and a cut through an echo leaves pieces
// that are still found.
const maxScrubInput = 16 * maxMessageLen

// credentials are what one exchange sent to the identity service. All of
// them are scrubbed from anything the service answers.
type credentials struct {
	// secrets are sent on their own: an API token, a client secret in
	// the body, a refresh token, a subject token, a password, a session.
	secrets []secret.Secret
	// pairs are client credentials sent in a Basic header.
	pairs []basicPair
}

// basicPair is a client ID and secret sent as HTTP Basic: base64 of
// "id:secret", raw as CSP wants it or with both form-encoded first as
// RFC 6749 2.3.1 and golang.org/x/oauth2 do.
type basicPair struct {
	id     string
	secret secret.Secret
}

func sentSecrets(ss ...secret.Secret) credentials { return credentials{secrets: ss} }

// withPair adds the Basic pair of id and s (the secret itself is added
// too, since a service may echo it alone).
func (c credentials) withPair(id string, s secret.Secret) credentials {
	c.secrets = append(c.secrets[:len(c.secrets):len(c.secrets)], s)
	c.pairs = append(c.pairs[:len(c.pairs):len(c.pairs)], basicPair{id: id, secret: s})
	return c
}

// needle is one encoding of a credential in normalised form.
type needle struct {
	s string
	// idOnly is how many leading bytes of s depend on the client ID
	// alone: pieces wholly inside them reveal nothing secret (and the
	// ID, useful in a message, is not a secret).
	idOnly int
}

// redactor scrubs an identity service's text of the credentials one
// exchange sent, in every encoding a service, or a WAF or load balancer
// in front of it, could repeat them: raw, form-encoded (QueryEscape and
// PathEscape, once or twice), JSON-escaped, hex, base64 in the standard
// and URL alphabets with and without padding (of the credential alone,
// of it form-encoded, and of the Basic pair raw and form-encoded, each
// also at the two other alignments it takes inside a longer encoded
// value), in any case, and any 8-byte piece of any of these.
//
// Matching runs on normalised text: control, format and space characters
// are left out, so that a control character or a space inserted into an
// echo does not hide it, and letters are case-folded. It runs twice, on
// the text as it is and with backslash and percent escapes decoded (the
// latter for a service that percent-encodes every byte), for text that a
// library quoted with %q (net/http quotes a malformed status line,
// strconv the number it could not parse).
type redactor struct {
	// needles are indexed by unescape: [0] as is, [1] escapes decoded.
	needles [2][]needle
}

func newRedactor(c credentials) *redactor {
	r := &redactor{}
	seen := [2]map[string]bool{{}, {}}
	add := func(enc, idEnc string) {
		var plain needle
		for mode, unescape := range []bool{false, true} {
			n := plain
			// Without a backslash or a percent sign, decoding escapes
			// changes nothing.
			if mode == 0 || strings.ContainsAny(enc, `\%`) || strings.ContainsAny(idEnc, `\%`) {
				n = needle{s: string(normalise(enc, unescape, nil))}
				if idEnc != "" {
					n.idOnly = commonPrefix(n.s, string(normalise(idEnc, unescape, nil)))
				}
			}
			plain = n
			if n.s == "" || seen[mode][n.s] {
				continue
			}
			seen[mode][n.s] = true
			r.needles[mode] = append(r.needles[mode], n)
		}
	}
	for _, s := range c.secrets {
		if s.Empty() {
			continue
		}
		for _, e := range encodings(s.Reveal()) {
			add(e, "")
		}
	}
	for _, p := range c.pairs {
		if p.secret.Empty() {
			continue
		}
		sec := p.secret.Reveal()
		for _, pair := range [][2]string{{p.id + ":", sec}, {url.QueryEscape(p.id) + ":", url.QueryEscape(sec)}} {
			full, idPart := encodings(pair[0]+pair[1]), encodings(pair[0])
			for i := range full {
				add(full[i], idPart[i])
			}
		}
	}
	return r
}

// Redact returns s with secrets taken out in every form the redactor
// knows (see redactor), for text from outside an exchange that may quote
// a credential: net/http's error about an upstream's malformed answer
// quotes the answer, and a hostile upstream can put the token it was sent
// there.
func Redact(s string, secrets ...secret.Secret) string {
	return newRedactor(sentSecrets(secrets...)).scrub(s)
}

// RedactError returns err with secrets taken out of its text (Redact):
// for an error that may quote a credential its maker did not know of (a
// token the cache holds, echoed by a later exchange's service). errors.Is
// and errors.As still see err; nil stays nil.
func RedactError(err error, secrets ...secret.Secret) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, msg: Redact(err.Error(), secrets...)}
}

type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// encodings returns the forms in which x may come back, always in the
// same order, so that those of "id:" line up with those of "id:secret".
func encodings(x string) []string {
	out := textForms(x)
	out = append(out, hex.EncodeToString([]byte(x)))
	for _, y := range []string{x, url.QueryEscape(x)} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			out = append(out, textForms(enc.EncodeToString([]byte(y)))...)
		}
		// Inside a longer encoded value (a Basic pair credproxy did not
		// build, a header block encoded whole), y starts one or two
		// bytes into a group of three and encodes differently: the
		// characters that depend on y alone are those after the first
		// group and before the last.
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for lead := 1; lead <= 2; lead++ {
				e := enc.EncodeToString(append(make([]byte, lead), y...))
				inner := ""
				if len(e)-8 >= pieceLen {
					inner = e[4 : len(e)-4]
				}
				// Always as many forms, so that those of "id:" line up.
				out = append(out, textForms(inner)...)
			}
		}
	}
	return out
}

// textForms are x as it is and escaped as a form value, a path, a JSON
// string (with and without the HTML escapes of encoding/json), and
// form-encoded twice (a form body echoed inside a form).
func textForms(x string) []string {
	js, _ := json.Marshal(x)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(x)
	return []string{
		x, url.QueryEscape(x), url.PathEscape(x), url.QueryEscape(url.QueryEscape(x)),
		string(js[1 : len(js)-1]), strings.TrimSuffix(strings.TrimSuffix(b.String(), "\n"), `"`)[1:],
	}
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// span is where in the original text a normalised byte came from.
type span struct{ start, end int32 }

// normalise returns s in the form the redactor compares: control, format
// and space characters left out, letters case-folded, invalid UTF-8 as
// U+FFFD and, when unescape is set, backslash escapes decoded first.
// When spans is not nil, it receives for each byte returned the input
// bytes it came from.
func normalise(s string, unescape bool, spans *[]span) []byte {
	out := make([]byte, 0, len(s))
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && c != '\\' && (c != '%' || !unescape) {
			// ASCII, the common case, without the Unicode tables.
			i++
			if c <= ' ' || c == 0x7f {
				continue
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			out = append(out, c)
			if spans != nil {
				*spans = append(*spans, span{int32(i - 1), int32(i)})
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case unescape && r == '\\':
			r, n = decodeEscapeRun(s[i:])
		case unescape && r == '%':
			r, n = percentEscape(s[i:])
		}
		start := i
		i += n
		if r < 0 || unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		enc := buf[:utf8.EncodeRune(buf[:], foldRune(r))]
		out = append(out, enc...)
		if spans != nil {
			for range enc {
				*spans = append(*spans, span{int32(start), int32(i)})
			}
		}
	}
	return out
}

// foldRune maps every case variant of r to one rune, including those
// that upper-casing reaches from another script's letter (ſ, ı, K).
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	r = unicode.ToLower(unicode.ToUpper(r))
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	// The lower case of the orbit's least member: what the ASCII path
	// gives for an ASCII letter.
	return unicode.ToLower(least)
}

// decodeEscapeRun reads a run of backslashes and the escape it ends in, if
// any: text quoted twice (%q of a JSON string) doubles the backslash of
// each escape. A run that ends in no escape is one backslash.
func decodeEscapeRun(s string) (rune, int) {
	j := 1
	for j < len(s) && s[j] == '\\' {
		j++
	}
	if r, n := decodeEscape(s[j-1:]); n > 1 {
		return r, j - 1 + n
	}
	return '\\', j
}

// decodeEscape reads the backslash escape at the start of s, as Go and
// JSON write them, and returns the character and the escape's length. A
// character that is to be left out (a control character) comes back as
// -1. A backslash that starts no escape is itself.
func decodeEscape(s string) (rune, int) {
	if len(s) < 2 {
		return '\\', 1
	}
	switch c := s[1]; c {
	case 'a', 'b', 'f', 'n', 'r', 't', 'v':
		return -1, 2
	case '\\', '"', '\'', '/':
		return rune(c), 2
	case 'x':
		r, n := hexEscape(s, 2)
		if r >= utf8.RuneSelf {
			r = utf8.RuneError // a byte of invalid UTF-8, as %q writes it
		}
		return r, n
	case 'u':
		return hexEscape(s, 4)
	case 'U':
		return hexEscape(s, 8)
	}
	return '\\', 1
}

// percentEscape reads the percent-escape of an ASCII character at the
// start of s (%41 is A): a service may percent-encode every byte of what
// it echoes, not only those that QueryEscape would. Anything else is a
// '%' of its own.
func percentEscape(s string) (rune, int) {
	if len(s) >= 3 {
		hi, ok1 := hexDigit(s[1])
		lo, ok2 := hexDigit(s[2])
		if v := hi<<4 | lo; ok1 && ok2 && v < utf8.RuneSelf {
			return rune(v), 3
		}
	}
	return '%', 1
}

func hexEscape(s string, digits int) (rune, int) {
	if len(s) < 2+digits {
		return '\\', 1
	}
	var v rune
	for _, c := range []byte(s[2 : 2+digits]) {
		d, ok := hexDigit(c)
		if !ok {
			return '\\', 1
		}
		v = v<<4 | rune(d)
	}
	if v > unicode.MaxRune || (v >= 0xd800 && v < 0xe000) {
		v = utf8.RuneError
	}
	return v, 2 + digits
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// scrub returns s with every encoding of the credentials, and every
// piece of one, replaced by redactedMark, and control and format
// characters (log injection, bidirectional overrides) replaced by
// spaces. It does not bound the length.
func (r *redactor) scrub(s string) string {
	if len(s) > maxScrubInput {
		s = s[:maxScrubInput]
	}
	// depth counts, by differences, how many matches cover each byte.
	depth := make([]int32, len(s)+1)
	for mode, unescape := range []bool{false, true} {
		var spans []span
		text := normalise(s, unescape, &spans)
		for _, m := range find(text, r.needles[mode]) {
			depth[spans[m.start].start]++
			depth[spans[m.end-1].end]--
		}
	}
	cut := make([]bool, len(s))
	var d int32
	for i := range cut {
		d += depth[i]
		cut[i] = d > 0
	}
	return render(s, cut)
}

// match is a range of normalised text to redact.
type match struct{ start, end int }

// find returns where in text needles or their pieces occur. Every
// pieceLen-byte window of text is indexed once; each needle is then read
// once, so the cost is linear in the text and the needles (plus the
// matches).
func find(text []byte, needles []needle) []match {
	var out []match
	windows := map[uint64][]int{}
	// applied is, for each window found, the smallest part of it kept so
	// far: a window is matched again only if that marks more, so the
	// matches stay linear in the text however repetitive it is.
	applied := map[uint64]int{}
	for i := 0; i+pieceLen <= len(text); i++ {
		k := binary.LittleEndian.Uint64(text[i:])
		windows[k] = append(windows[k], i)
	}
	for _, n := range needles {
		if len(n.s) < pieceLen {
			for off := 0; off < len(text); {
				j := bytes.Index(text[off:], []byte(n.s))
				if j < 0 {
					break
				}
				out = append(out, match{off + j, off + j + len(n.s)})
				off += j + 1
			}
			continue
		}
		for i := 0; i+pieceLen <= len(n.s); i++ {
			if i+pieceLen <= n.idOnly {
				continue
			}
			// Of a piece that starts in the client ID, the ID's part
			// is kept: it reveals nothing of the secret.
			keep := max(0, n.idOnly-i)
			k := windowKey(n.s[i : i+pieceLen])
			if prev, ok := applied[k]; ok && prev <= keep {
				continue
			}
			positions, ok := windows[k]
			if !ok {
				continue
			}
			applied[k] = keep
			for _, p := range positions {
				out = append(out, match{p + keep, p + pieceLen})
			}
		}
	}
	return out
}

// windowKey is binary.LittleEndian.Uint64 of a pieceLen-byte string.
func windowKey(s string) uint64 {
	var k uint64
	for i := pieceLen - 1; i >= 0; i-- {
		k = k<<8 | uint64(s[i])
	}
	return k
}

// render writes s with each run of cut bytes as one redactedMark, control
// and format characters as spaces and invalid UTF-8 as U+FFFD.
func render(s string, cut []bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if cut[i] {
			b.WriteString(redactedMark)
			for i < len(s) && cut[i] {
				i++
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteRune(utf8.RuneError)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			b.WriteByte(' ')
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// clean makes a service-provided string safe to log and to show: scrubbed
// of the credentials sent, with control characters as spaces, and bounded
// to maxMessageLen bytes without cutting through a redactedMark.
func clean(s string, r *redactor) string {
	s = strings.TrimSpace(r.scrub(s))
	if len(s) <= maxMessageLen {
		return s
	}
	cutAt := maxMessageLen
	if i := strings.LastIndex(s[:cutAt], "["); i >= 0 && strings.HasPrefix(s[i:], redactedMark) && i+len(redactedMark) > cutAt {
		cutAt = i
	}
	return strings.TrimSpace(strings.ToValidUTF8(s[:cutAt], "")) + "..."
}
