package secret

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/credproxy/credproxy/internal/logtest"
)

// TestRedactEchoShapes: each shape in which a service could repeat a
// credential comes out as redactedMark, with the words around it kept.
func TestRedactEchoShapes(t *testing.T) {
	const (
		id  = "my app"
		sec = "S3cr+t/Val=ue-0123"
	)
	b64 := base64.StdEncoding.EncodeToString
	pair := b64([]byte(id + ":" + sec))
	formPair := b64([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(sec)))
	tcs := []struct {
		desc, echo string
		want       string // "" means "bad [redacted] end"
	}{
		{desc: "raw", echo: sec},
		{desc: "QueryEscape", echo: url.QueryEscape(sec)},
		{desc: "PathEscape", echo: url.PathEscape(sec)},
		{desc: "form body", echo: "grant_type=client_credentials&client_secret=" + url.QueryEscape(sec), want: "bad grant_type=client_credentials&client_secret=[redacted] end"},
		{desc: "form-encoded twice", echo: url.QueryEscape(url.QueryEscape(sec))},
		{desc: "JSON-escaped", echo: strings.Trim(mustJSON(sec), `"`)},
		{desc: "every character \\u-escaped", echo: jsonEscapeAll(sec)},
		{desc: "hex", echo: hex.EncodeToString([]byte(sec))},
		{desc: "base64", echo: b64([]byte(sec))},
		{desc: "base64 raw", echo: base64.RawStdEncoding.EncodeToString([]byte(sec))},
		{desc: "base64 URL", echo: base64.URLEncoding.EncodeToString([]byte(sec))},
		{desc: "base64 raw URL", echo: base64.RawURLEncoding.EncodeToString([]byte(sec))},
		{desc: "base64 of the form-encoded secret", echo: b64([]byte(url.QueryEscape(sec)))},
		{desc: "Basic pair raw", echo: "Basic " + pair, want: "bad Basic bXkgYXBwO[redacted] end"},
		{desc: "Basic pair form-encoded first", echo: "Basic " + formPair, want: "bad Basic bXkrYXBwO[redacted] end"},
		{desc: "Basic header form-encoded", echo: url.QueryEscape("Basic " + pair), want: "bad Basic+bXkgYXBwO[redacted] end"},
		{desc: "Basic header PathEscape", echo: url.PathEscape("Basic " + formPair), want: "bad Basic%20bXkrYXBwO[redacted] end"},
		{desc: "pair decoded", echo: id + ":" + sec, want: "bad my app:[redacted] end"},
		{desc: "upper-cased", echo: strings.ToUpper(sec)},
		{desc: "lower-cased", echo: strings.ToLower(sec)},
		{desc: "base64 upper-cased", echo: strings.ToUpper(b64([]byte(sec)))},
		{desc: "prefix of 8", echo: sec[:8]},
		{desc: "piece of 8 from the middle", echo: sec[5:13]},
		{desc: "prefix of the base64", echo: b64([]byte(sec))[:9]},
		{desc: "control character inside", echo: sec[:6] + "\x01" + sec[6:]},
		{desc: "NUL, DEL and C1 inside", echo: sec[:3] + "\x00" + sec[3:9] + "\x7f\u0085" + sec[9:]},
		{desc: "newline and tab inside", echo: sec[:6] + "\r\n\t" + sec[6:]},
		{desc: "zero-width space and bidi override inside", echo: sec[:4] + "\u200b" + sec[4:10] + "\u202e" + sec[10:]},
		{desc: "a space between every character", echo: strings.Join(strings.Split(sec, ""), " ")},
		{desc: "Go-quoted with a control character", echo: strconv.Quote(sec[:6] + "\x01" + sec[6:]), want: `bad "[redacted]" end`},
		{desc: "Go-quoted JSON", echo: strconv.Quote(jsonEscapeAll(sec)), want: `bad "[redacted]" end`},
		{desc: "echoed twice", echo: sec + " and " + strings.ToUpper(sec), want: "bad [redacted] and [redacted] end"},
		{desc: "7 characters: not a piece", echo: sec[:7], want: "bad " + sec[:7] + " end"},
		{desc: "the client ID alone is kept", echo: id, want: "bad my app end"},
	}
	r := NewRedactor(Credentials{}.WithPair(id, New(sec)))
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			want := tc.want
			if want == "" {
				want = "bad " + redactedMark + " end"
			}
			if got := r.Clean("bad " + tc.echo + " end"); got != want {
				t.Errorf("clean = %q, want %q", got, want)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestRedactEveryShape: each of logtest.Shapes of a credential, inside a
// service's text, leaves no piece of it that the leak checks find, and
// the words around it are kept. The secret has characters outside ASCII
// and beyond U+FFFF, so the UTF-16 forms hold surrogate pairs.
func TestRedactEveryShape(t *testing.T) {
	for _, sec := range []string{"S3cr+t/Val=ue-0123É😀", "sh0rt"} {
		r := NewRedactor(Credentials{}.WithPair("my app", New(sec)))
		for _, sh := range logtest.Shapes(sec) {
			t.Run(sec+"/"+sh.Name, func(t *testing.T) {
				got := r.Clean("bad " + sh.Text + " end")
				if leak := leakedPiece(got, []string{sec}); leak != "" || !strings.HasPrefix(got, "bad ") || !strings.HasSuffix(got, " end") {
					t.Errorf("clean(%q) = %q, keeps %q", sh.Text, got, leak)
				}
			})
		}
	}
}

// TestRedactShortSecret: a credential shorter than 8 characters is
// redacted whole, in every encoding, in any case.
func TestRedactShortSecret(t *testing.T) {
	const sec = "Ab+/9"
	r := NewRedactor(Credentials{}.WithPair("app", New(sec)))
	for _, echo := range []string{
		sec, "ab+/9", url.QueryEscape(sec), url.PathEscape(sec), base64.StdEncoding.EncodeToString([]byte(sec)),
		"A\x01b+/9", "a b + / 9",
	} {
		if got := r.Clean("x " + echo + " y"); got != "x "+redactedMark+" y" {
			t.Errorf("echo %q: clean = %q", echo, got)
		}
	}
	// In the Basic pair, what encodes the client ID alone is kept.
	if got := r.Clean("x " + base64.StdEncoding.EncodeToString([]byte("app:"+sec)) + " y"); got != "x YXBwO"+redactedMark+" y" {
		t.Errorf("Basic pair: clean = %q", got)
	}
}

// TestCleanBounds: the result is bounded to MaxCleanLen (plus "..."),
// valid UTF-8, without control characters, and a cut never splits a
// redactedMark (half a mark would hide that something was taken out).
func TestCleanBounds(t *testing.T) {
	const sec = "bound-S3cret-value"
	r := NewRedactor(NewCredentials(New(sec)))
	for n := MaxCleanLen - 20; n <= MaxCleanLen+5; n++ {
		s := r.Clean(strings.Repeat("é", n/2) + strings.Repeat("x", n%2) + sec + "\x1b\x07" + strings.Repeat("z", 400))
		body := strings.TrimSuffix(s, "...")
		if len(body) > MaxCleanLen || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
			t.Fatalf("n=%d: %d bytes, valid %v: %q", n, len(s), utf8.ValidString(s), s)
		}
		for k := 1; k < len(redactedMark); k++ {
			if strings.HasSuffix(body, redactedMark[:k]) {
				t.Fatalf("n=%d: a cut redactedMark: %q", n, body)
			}
		}
		if leakedPiece(s, []string{sec}) != "" {
			t.Fatalf("n=%d: leak in %q", n, s)
		}
	}
	if got := r.Clean(strings.Repeat(sec, maxScrubInput)); strings.Trim(strings.TrimSuffix(got, "..."), "[redact]") != "" {
		t.Errorf("a long echo: %q", got)
	}
}

// fuzzShapes encode a credential as a service might echo it; each is
// written here independently of the redactor's own list.
var fuzzShapes = []func(id, sec string) string{
	func(_, s string) string { return s },
	func(_, s string) string { return url.QueryEscape(s) },
	func(_, s string) string { return url.PathEscape(s) },
	func(_, s string) string {
		return "client_secret=" + url.QueryEscape(s) + "&grant_type=client_credentials"
	},
	func(_, s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	func(_, s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) },
	func(_, s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) },
	func(_, s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) },
	func(id, s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+s)) },
	func(id, s string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(s)))
	},
	func(id, s string) string {
		return url.QueryEscape("Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+s)))
	},
	func(id, s string) string {
		return url.PathEscape("Basic " + base64.URLEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(s))))
	},
	func(id, s string) string { return id + ":" + s },
	func(_, s string) string { return strings.Trim(mustJSON(s), `"`) },
	func(_, s string) string { return hex.EncodeToString([]byte(s)) },
	func(_, s string) string { return url.QueryEscape(url.QueryEscape(s)) },
}

// fuzzEcho is the shape-th of fuzzShapes and logtest.Shapes (the latter
// written apart from both the redactor and the checker's matching).
func fuzzEcho(shape uint8, id, sec string) string {
	shapes := logtest.Shapes(sec)
	n := int(shape) % (len(fuzzShapes) + len(shapes))
	if n < len(fuzzShapes) {
		return fuzzShapes[n](id, sec)
	}
	return shapes[n-len(fuzzShapes)].Text
}

// FuzzRedact: a random credential, echoed in a random shape, case,
// truncated to a prefix of at least 8 characters, with control
// characters inserted, inside random text, never leaves an 8-character
// piece of itself (case-insensitively, control characters and spaces
// ignored) in what the redactor returns, nor all of a shorter one. The
// output is read between redactedMarks and without a final "...":
// those are credproxy's own text, and a piece that only forms with them
// is not the service's.
func FuzzRedact(f *testing.F) {
	for _, s := range []struct {
		sec, id, before, after string
		shape, caseMode        uint8
		keep                   uint16
		ctrl                   []byte
	}{
		{"appSecret", "appId", "bad ", " end", 8, 0, 0, nil},
		{"S3cr+t/Val=ue-0123", "my app", "", "", 9, 1, 12, []byte{3, 1}},
		{"Cl+ent/S3cr=tÉ9x-abc", "c", "error: ", "", 1, 2, 9, []byte{5, 0, 9, 0x7f}},
		{"s+0rt", "id", "x", "y", 0, 1, 0, []byte{2, '\n'}},
		{"fz-S3cret-0123456789-abcdef", "app", `\`, `\`, 13, 0, 8, []byte{1, '\t', 4, 0x1b}},
		{"ſecret-İd-KELVIN-K", "ı", "", "", 0, 1, 0, nil},
		{"pa55:w/rd+É", "ops@example.com", "{\"message\":\"", "\"}", 3, 2, 10, []byte{0, 0x85}},
		{"eyJhbGciOi.subject-t0k3n.sig", "", "", "", 10, 0, 20, []byte{7, 0}},
		// logtest.Shapes from index 16: HTML entities, hex with separators,
		// base32, UTF-16 bytes, decimal bytes, reversed.
		{"S3cr+t/Val=ue-0123", "my app", "<p>", "</p>", 16 + 5, 0, 0, nil},
		{"Cl+ent/S3cr=tÉ9x-abc", "c", "", "", 16 + 6, 1, 40, []byte{3, ' '}},
		{"fz-S3cret-0123456789-abcdef", "app", "mac ", "", 16 + 8, 1, 0, []byte{9, '\n'}},
		{"fz-S3cret-0123456789-abcdef", "app", "", "", 16 + 9, 2, 0, nil},
		{"pa55:w/rd+É", "ops", "b32=", "", 16 + 13, 2, 0, []byte{4, 0}},
		{"pa55:w/rd+É€😀", "ops", "", "", 16 + 4, 0, 0, nil},
		{"appSecret-ÉÉ-0123", "appId", "u16 ", "", 16 + 16, 0, 0, nil},
		{"appSecret-ÉÉ-0123", "appId", "u16 ", "", 16 + 19, 1, 0, nil},
		{"appSecret-0123", "appId", "[", "]", 16 + 21, 0, 0, []byte{6, '\t'}},
		{"appSecret-0123", "appId", "", "", 16 + 22, 1, 0, nil},
	} {
		f.Add(s.sec, s.id, s.before, s.after, s.shape, s.caseMode, s.keep, s.ctrl)
	}
	f.Fuzz(func(t *testing.T, sec, id, before, after string, shape, caseMode uint8, keep uint16, ctrl []byte) {
		if len(sec) > 256 || len(id) > 64 || len(before)+len(after) > 1024 || len(ctrl) > 32 {
			return
		}
		sec, id = strings.ToValidUTF8(sec, ""), strings.ToValidUTF8(id, "")
		echo := fuzzEcho(shape, id, sec)
		switch caseMode % 3 {
		case 1:
			echo = strings.ToUpper(echo)
		case 2:
			echo = strings.ToLower(echo)
		}
		if runes := []rune(echo); keep > 0 && int(keep) >= 8 && int(keep) < len(runes) {
			echo = string(runes[:keep])
		}
		for i := 0; i+1 < len(ctrl); i += 2 {
			c := rune(ctrl[i+1] % 0x20)
			if ctrl[i+1] >= 0x80 {
				c = 0x7f + rune(ctrl[i+1]%0x22) // DEL and the C1 controls
			}
			runes := []rune(echo)
			at := int(ctrl[i]) % (len(runes) + 1)
			echo = string(runes[:at]) + string(c) + string(runes[at:])
		}
		r := NewRedactor(Credentials{}.WithPair(id, New(sec)))
		text := before + echo + after
		if leak := leakedPiece(r.Scrub(text), []string{sec}); leak != "" {
			t.Fatalf("scrub(%q) = %q keeps %q", text, r.Scrub(text), leak)
		}
		out := r.Clean(text)
		if leak := leakedPiece(out, []string{sec}); leak != "" {
			t.Fatalf("clean(%q) = %q keeps %q", text, out, leak)
		}
		if len(out) > MaxCleanLen+len("...") || strings.ContainsFunc(out, unicode.IsControl) || !utf8.ValidString(out) {
			t.Fatalf("clean(%q) = %q: too long, invalid or with a control character", text, out)
		}
	})
}

// jsonEscapeAll writes every character of v as a \u escape.
func jsonEscapeAll(v string) string {
	var b strings.Builder
	for _, r := range v {
		b.WriteString(`\u`)
		b.WriteString(strconv.FormatInt(int64(0x10000+r), 16)[1:])
	}
	return b.String()
}

// leakedPiece returns the first piece of a secret that logtest finds in
// text (8 bytes, in any encoding, case and spacing ignored), or "". Text
// on either side of a "[redacted]" is checked apart: a piece that only
// forms across the marker is not in the output.
func leakedPiece(text string, secrets []string) string {
	for _, seg := range strings.Split(strings.TrimSuffix(text, "..."), "[redacted]") {
		if p, _ := logtest.Leak(seg, secrets...); p != "" {
			return p
		}
	}
	return ""
}
