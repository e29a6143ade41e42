package secret

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// redactedMark replaces whatever the redactor takes out.
const redactedMark = "[redacted]"

// PieceLen is the length of the smallest piece of a credential that is
// redacted: any 8 bytes of a credential, or of one of its encodings, are
// taken out of a service's text, so a truncated or partly masked echo
// leaks nothing either. A credential shorter than that is redacted whole.
const PieceLen = 8

// maxScrubInput bounds how much of a service's text is examined: far more
// than the MaxCleanLen kept, and a cut through an echo leaves pieces
// that are still found.
const maxScrubInput = 16 * MaxCleanLen

// MaxCleanLen bounds what Clean returns (before its "..."): exchange
// keeps service messages in errors, and logs them, at this length.
const MaxCleanLen = 300

// Credentials are what one exchange sent to an identity service, or what
// a request carried: the secrets a Redactor takes out of whatever
// answers. The zero value holds none.
type Credentials struct {
	// secrets are sent on their own: an API token, a client secret in
	// the body, a refresh token, a subject token, a password, a session.
	secrets []Secret
	// pairs are client credentials sent in a Basic header.
	pairs []basicPair
}

// basicPair is a client ID and secret sent as HTTP Basic: base64 of
// "id:secret", raw as CSP wants it or with both form-encoded first as
// RFC 6749 2.3.1 and golang.org/x/oauth2 do.
type basicPair struct {
	id     string
	secret Secret
}

// NewCredentials returns the Credentials of secrets sent on their own.
func NewCredentials(ss ...Secret) Credentials { return Credentials{secrets: ss} }

// With returns c with ss added. c is not changed.
func (c Credentials) With(ss ...Secret) Credentials {
	c.secrets = append(c.secrets[:len(c.secrets):len(c.secrets)], ss...)
	return c
}

// WithPair returns c with the Basic pair of id and s added (the secret
// itself is added too, since a service may echo it alone). c is not
// changed.
func (c Credentials) WithPair(id string, s Secret) Credentials {
	c.secrets = append(c.secrets[:len(c.secrets):len(c.secrets)], s)
	c.pairs = append(c.pairs[:len(c.pairs):len(c.pairs)], basicPair{id: id, secret: s})
	return c
}

// needle is one encoding of a credential in normalised form.
type needle struct {
	s string
	// min is the length of its shortest piece redacted, when more than
	// PieceLen (see form).
	min int
	// idOnly is how many leading bytes of s depend on the client ID
	// alone: pieces wholly inside them reveal nothing secret (and the
	// ID, useful in a message, is not a secret).
	idOnly int
}

// Redactor scrubs an identity service's text of the credentials one
// exchange sent, in every encoding a service, or a WAF or load balancer
// in front of it, could repeat them: raw and reversed, form-encoded
// (QueryEscape and PathEscape, once or twice), JSON-escaped, hex (plain,
// or with a colon, dash or space between bytes), decimal bytes (run
// together or separated by spaces or commas), base32 with and without
// padding, base64 in the standard and URL alphabets with and without
// padding (of the credential alone, of it form-encoded, and of the Basic
// pair raw and form-encoded; base64 and base32 also at the other
// alignments they take inside a longer encoded value), its UTF-16LE and
// UTF-16BE bytes as hex, decimal or base64, in any case, and any 8-byte
// piece of any of these.
//
// Matching runs on normalised text: control, format and space characters
// are left out, so that a control character or a space inserted into an
// echo does not hide it, and letters are case-folded. It runs twice, on
// the text as it is and with escapes decoded: backslash escapes (\u
// escapes with their surrogate pairs, for text that a library quoted
// with %q or JSON-escaped every character), percent escapes (for a
// service that percent-encodes every byte) and HTML character references
// (&#65; &#x41; &amp;, for an error page).
type Redactor struct {
	// Both are indexed by unescape: [0] as is, [1] escapes decoded.
	//
	// windows maps every PieceLen-byte window of every needle to how
	// many of its leading bytes to keep: those of a window that starts
	// in the client ID (see needle), 0 for the others.
	windows [2]map[uint64]int
	// longer maps, by their length, the windows of the needles whose
	// pieces are longer than PieceLen (see form), as windows does.
	longer [2]map[int]map[string]int
	// short are the needles shorter than their piece, matched whole.
	short [2][]string
}

// NewRedactor returns the Redactor of c. Building it costs far more than
// one Scrub: make one per exchange and use it for every string taken
// from the answer. A Redactor is not changed by use and may be shared.
func NewRedactor(c Credentials) *Redactor {
	// Every form of every credential, with the forms of the client ID
	// alone for a pair.
	var forms, idForms []string
	var mins []int
	for _, s := range c.secrets {
		if s.Empty() {
			continue
		}
		e := encodings(s.Reveal())
		forms, idForms, mins = append(forms, e...), append(idForms, make([]string, len(e))...), append(mins, make([]int, len(e))...)
		for _, f := range byteEncodings(s.Reveal()) {
			forms, idForms, mins = append(forms, f.s), append(idForms, ""), append(mins, f.min)
		}
	}
	for _, p := range c.pairs {
		if p.secret.Empty() {
			continue
		}
		sec := p.secret.Reveal()
		for _, pair := range [][2]string{{p.id + ":", sec}, {url.QueryEscape(p.id) + ":", url.QueryEscape(sec)}} {
			e := encodings(pair[0] + pair[1])
			forms, idForms, mins = append(forms, e...), append(idForms, encodings(pair[0])...), append(mins, make([]int, len(e))...)
		}
	}
	// Sized for the distinct windows, about a quarter of all: growing
	// the maps was most of the cost.
	size := 0
	for _, f := range forms {
		size += max(0, len(f)-PieceLen+1)
	}
	r := &Redactor{windows: [2]map[uint64]int{make(map[uint64]int, size/4), make(map[uint64]int, size/8)}, longer: [2]map[int]map[string]int{{}, {}}}
	seen := [2]map[string]bool{make(map[string]bool, len(forms)), make(map[string]bool, len(forms)/2)}
	for i, enc := range forms {
		var plain needle
		for mode, unescape := range []bool{false, true} {
			n := plain
			// Without a backslash, a percent sign or an ampersand,
			// decoding escapes changes nothing.
			if mode == 0 || strings.ContainsAny(enc, `\%&`) || strings.ContainsAny(idForms[i], `\%&`) {
				n = needle{s: string(normalise(enc, unescape, nil)), min: mins[i]}
				if idForms[i] != "" {
					n.idOnly = commonPrefix(n.s, string(normalise(idForms[i], unescape, nil)))
				}
			}
			plain = n
			if n.s == "" || seen[mode][n.s] {
				continue
			}
			seen[mode][n.s] = true
			r.index(mode, n)
		}
	}
	return r
}

// index adds n's windows (or n itself, when shorter than a window) to
// those matched in mode.
func (r *Redactor) index(mode int, n needle) {
	if l := max(PieceLen, n.min); len(n.s) < l {
		r.short[mode] = append(r.short[mode], n.s)
		return
	} else if l > PieceLen {
		w := r.longer[mode][l]
		if w == nil {
			w = map[string]int{}
			r.longer[mode][l] = w
		}
		for i := 0; i+l <= len(n.s); i++ {
			w[n.s[i:i+l]] = 0 // no client ID in these forms
		}
		return
	}
	w := r.windows[mode]
	for i := 0; i+PieceLen <= len(n.s); i++ {
		if i+PieceLen <= n.idOnly {
			continue // wholly inside the client ID
		}
		// Of a piece that starts in the client ID, the ID's part is
		// kept: it reveals nothing of the secret.
		keep := max(0, n.idOnly-i)
		k := windowKey(n.s[i : i+PieceLen])
		if prev, ok := w[k]; !ok || keep < prev {
			w[k] = keep
		}
	}
}

// Redact returns s with secrets taken out in every form a Redactor
// knows, for text from outside an exchange that may quote
// a credential: net/http's error about an upstream's malformed answer
// quotes the answer, and a hostile upstream can put the token it was sent
// there.
func Redact(s string, secrets ...Secret) string {
	return NewRedactor(NewCredentials(secrets...)).Scrub(s)
}

// RedactError returns err with secrets taken out of its text (Redact):
// for an error that may quote a credential its maker did not know of (a
// token the cache holds, echoed by a later exchange's service). errors.Is
// and errors.As still see err; nil stays nil.
func RedactError(err error, secrets ...Secret) error {
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

// encodings returns the forms in which x, a secret or a Basic pair, may
// come back, always in the same order and number, so that those of "id:"
// line up with those of "id:secret".
func encodings(x string) []string {
	out := textForms(x)
	out = append(out, hex.EncodeToString([]byte(x)))
	for _, y := range []string{x, url.QueryEscape(x)} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			out = append(out, textForms(enc.EncodeToString([]byte(y)))...)
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			out = append(out, alignedForms(enc.EncodeToString, []byte(y), 3, 4, textForms)...)
		}
	}
	return out
}

// form is an encoding of a secret whose pieces are longer than PieceLen
// when it spends more than two characters on a byte: a piece counts when
// it encodes at least 4 bytes of the secret, as 8 hex digits do, so that
// a clock's "00:30:00" is not taken for the UTF-16 of a "0". min is that
// length (0 for PieceLen). logtest's leak checks use the same lengths.
type form struct {
	s   string
	min int
}

// byteEncodings returns the forms in which x alone may come back that
// work on its bytes one by one or that no Basic pair is sent in: for the
// pair, the forms of the secret alone find them, since a piece of these
// is a piece of the secret's (base32 and base64 of UTF-16 at every
// alignment included). Reversed x is here too.
//
// They come raw only, not also form- or JSON-escaped: their alphabets
// need no escape but '+', '/', '=', ',' and ':', whose percent escapes
// the second pass of matching decodes.
func byteEncodings(x string) []form {
	var out []form
	add := func(min int, ss ...string) {
		for _, s := range ss {
			out = append(out, form{s, min})
		}
	}
	add(0, textForms(reversed(x))...)
	add(0, base32Forms([]byte(x))...)
	add(0, joinBytes([]byte(x), 10, 0))
	add(11, joinBytes([]byte(x), 16, ':'), joinBytes([]byte(x), 16, '-'), joinBytes([]byte(x), 10, ','))
	// A service that handles text as UTF-16 (Windows, Java, JavaScript)
	// may encode those bytes; its \u escapes are decoded by normalise.
	units := utf16.Encode([]rune(x))
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		b := make([]byte, 0, 2*len(units))
		for _, u := range units {
			b = order.AppendUint16(b, u)
		}
		add(16, hex.EncodeToString(b))
		add(23, joinBytes(b, 16, ':'), joinBytes(b, 16, '-'))
		add(14, joinBytes(b, 10, 0))
		add(18, joinBytes(b, 10, ','))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			add(12, enc.EncodeToString(b))
			add(12, alignedForms(enc.EncodeToString, b, 3, 4, rawForm)...)
		}
	}
	return out
}

// base32Forms are b in base32 (RFC 4648 standard alphabet; lower case is
// folded by normalise) with padding (of which the unpadded form is a
// prefix, so any piece of it is found too; a short one is added), and at
// the four other alignments in a group of five.
func base32Forms(b []byte) []string {
	out := []string{base32.StdEncoding.EncodeToString(b), base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)}
	return append(out, alignedForms(base32.StdEncoding.EncodeToString, b, 5, 8, rawForm)...)
}

// alignedForms are the characters of encode's output that depend on b
// alone when b starts 1 to group-1 bytes into a group of an encoding that
// writes group bytes as width characters, each in the forms that forms
// returns. There are always as many (empty when too short), so that
// those of "id:" line up.
func alignedForms(encode func([]byte) string, b []byte, group, width int, forms func(string) []string) []string {
	var out []string
	for lead := 1; lead < group; lead++ {
		e := encode(append(make([]byte, lead), b...))
		inner := ""
		if len(e)-2*width >= PieceLen {
			inner = e[width : len(e)-width]
		}
		out = append(out, forms(inner)...)
	}
	return out
}

func rawForm(x string) []string { return []string{x} }

// joinBytes writes each byte of b in base 10 or 16 (two digits), with sep
// between them unless it is 0.
func joinBytes(b []byte, base int, sep byte) string {
	out := make([]byte, 0, 4*len(b))
	for i, c := range b {
		if i > 0 && sep != 0 {
			out = append(out, sep)
		}
		if base == 16 {
			out = hex.AppendEncode(out, []byte{c})
		} else {
			out = strconv.AppendUint(out, uint64(c), 10)
		}
	}
	return string(out)
}

func reversed(x string) string {
	r := []rune(x)
	slices.Reverse(r)
	return string(r)
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
		if c := s[i]; c < utf8.RuneSelf && c != '\\' && (c != '%' && c != '&' || !unescape) {
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
		if raw, n := byteEscapes(s[i:]); unescape && n > 0 {
			out = appendBytes(out, raw, spans, span{int32(i), int32(i + n)})
			i += n
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case unescape && r == '\\':
			r, n = decodeEscapeRun(s[i:])
		case unescape && r == '%':
			r, n = percentEscape(s[i:])
		case unescape && r == '&':
			r, n = htmlReference(s[i:])
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

// byteEscapes reads the run of \xHH escapes of bytes 0x80 and above at
// the start of s (%q writes each byte of invalid UTF-8 so, such as the
// first byte of a character that a cut left alone; a doubled backslash,
// text quoted twice, is read too) and returns the bytes and the run's
// length; n is 0 when s starts with none.
func byteEscapes(s string) (b []byte, n int) {
	for {
		j := n
		for j < len(s) && s[j] == '\\' {
			j++
		}
		if j == n || j+3 > len(s) || s[j] != 'x' {
			return b, n
		}
		hi, ok1 := hexDigit(s[j+1])
		lo, ok2 := hexDigit(s[j+2])
		if !ok1 || !ok2 || hi < 8 {
			return b, n
		}
		b = append(b, hi<<4|lo)
		n = j + 3
	}
}

// appendBytes appends raw, bytes that escapes at from stood for, in
// normalised form: each valid UTF-8 character case-folded, each byte of
// invalid UTF-8 as it is (it may be the first byte of a character of a
// credential, which is then matched byte for byte).
func appendBytes(out, raw []byte, spans *[]span, from span) []byte {
	for len(raw) > 0 {
		r, n := utf8.DecodeRune(raw)
		before := len(out)
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, raw[0])
		case unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r):
		default:
			out = utf8.AppendRune(out, foldRune(r))
		}
		raw = raw[n:]
		if spans != nil {
			for range len(out) - before {
				*spans = append(*spans, from)
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
		return utf16Escape(s)
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

// utf16Escape reads \uXXXX at the start of s, and the low surrogate
// that follows a high one: JSON writes a character beyond U+FFFF as a
// pair of escapes.
func utf16Escape(s string) (rune, int) {
	hi, n := hexDigits(s, 2, 4)
	if n == 0 {
		return '\\', 1
	}
	if !utf16.IsSurrogate(hi) {
		return hi, n
	}
	if lo, m := hexDigits(s[n:], 2, 4); m > 0 && strings.HasPrefix(s[n:], `\u`) {
		if r := utf16.DecodeRune(hi, lo); r != utf8.RuneError {
			return r, n + m
		}
	}
	return utf8.RuneError, n
}

// htmlReference reads the HTML character reference at the start of s:
// &#65; or &#x41; (the semicolon optional, as browsers read them) or
// one of the five of XML (&amp; &lt; &gt; &quot; &apos;). Anything else
// is an '&' of its own.
func htmlReference(s string) (rune, int) {
	var r rune
	var n int
	switch {
	case len(s) > 3 && s[1] == '#' && (s[2] == 'x' || s[2] == 'X'):
		r, n = digitsAt(s, 3, 6, 16)
	case len(s) > 2 && s[1] == '#':
		r, n = digitsAt(s, 2, 7, 10)
	default:
		for _, e := range [...]string{"&amp;&", "&lt;<", "&gt;>", "&quot;\"", "&apos;'"} {
			if name := e[:len(e)-1]; strings.HasPrefix(s, name) {
				return rune(e[len(e)-1]), len(name)
			}
		}
	}
	if n == 0 {
		return '&', 1
	}
	if n < len(s) && s[n] == ';' {
		n++
	}
	if r > unicode.MaxRune || (r >= 0xd800 && r < 0xe000) {
		r = utf8.RuneError
	}
	return r, n
}

// digitsAt reads 1 to most digits of base (10 or 16) from s[skip:] and
// returns their value and where they end; 0, 0 without a digit.
func digitsAt(s string, skip, most int, base byte) (rune, int) {
	var v rune
	end := skip
	for ; end < len(s) && end-skip < most; end++ {
		d, ok := hexDigit(s[end])
		if !ok || d >= base {
			break
		}
		v = v*rune(base) + rune(d)
	}
	if end == skip {
		return 0, 0
	}
	return v, end
}

// hexDigits reads exactly digits hex digits from s[skip:]; 0, 0 when
// they are not there.
func hexDigits(s string, skip, digits int) (rune, int) {
	if len(s) < skip+digits {
		return 0, 0
	}
	var v rune
	for _, c := range []byte(s[skip : skip+digits]) {
		d, ok := hexDigit(c)
		if !ok {
			return 0, 0
		}
		v = v<<4 | rune(d)
	}
	return v, skip + digits
}

func hexEscape(s string, digits int) (rune, int) {
	v, n := hexDigits(s, 2, digits)
	if n == 0 {
		return '\\', 1
	}
	if v > unicode.MaxRune || (v >= 0xd800 && v < 0xe000) {
		v = utf8.RuneError
	}
	return v, n
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

// Scrub returns s with every encoding of the credentials, and every
// piece of one, replaced by redactedMark, and control and format
// characters (log injection, bidirectional overrides) replaced by
// spaces. It does not bound the length.
func (r *Redactor) Scrub(s string) string {
	if len(s) > maxScrubInput {
		s = s[:maxScrubInput]
	}
	// depth counts, by differences, how many matches cover each byte.
	depth := make([]int32, len(s)+1)
	for mode, unescape := range []bool{false, true} {
		var spans []span
		text := normalise(s, unescape, &spans)
		for _, m := range r.find(text, mode) {
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

// find returns where in text the needles of mode or their pieces occur:
// one map lookup per window of text, whatever the number of needles.
func (r *Redactor) find(text []byte, mode int) []match {
	var out []match
	for _, n := range r.short[mode] {
		for off := 0; off < len(text); {
			j := bytes.Index(text[off:], []byte(n))
			if j < 0 {
				break
			}
			out = append(out, match{off + j, off + j + len(n)})
			off += j + 1
		}
	}
	if w := r.windows[mode]; len(w) > 0 {
		for i := 0; i+PieceLen <= len(text); i++ {
			if keep, ok := w[binary.LittleEndian.Uint64(text[i:])]; ok {
				out = append(out, match{i + keep, i + PieceLen})
			}
		}
	}
	for l, w := range r.longer[mode] {
		for i := 0; i+l <= len(text); i++ {
			if _, ok := w[string(text[i:i+l])]; ok {
				out = append(out, match{i, i + l})
			}
		}
	}
	return out
}

// windowKey is binary.LittleEndian.Uint64 of a PieceLen-byte string.
func windowKey(s string) uint64 {
	var k uint64
	for i := PieceLen - 1; i >= 0; i-- {
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

// Clean makes a service-provided string safe to log and to show: scrubbed
// of the credentials (Scrub), with control characters as spaces, and
// bounded to MaxCleanLen bytes without cutting through a redactedMark.
func (r *Redactor) Clean(s string) string {
	s = strings.TrimSpace(r.Scrub(s))
	if len(s) <= MaxCleanLen {
		return s
	}
	cutAt := MaxCleanLen
	if i := strings.LastIndex(s[:cutAt], "["); i >= 0 && strings.HasPrefix(s[i:], redactedMark) && i+len(redactedMark) > cutAt {
		cutAt = i
	}
	return strings.TrimSpace(strings.ToValidUTF8(s[:cutAt], "")) + "..."
}
