package logtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper()             {}
func (r *recorder) Failed() bool        { return len(r.errs) > 0 }
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Cleanup(f func())    { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestHygieneFindsPiecesInEveryKindOfText(t *testing.T) {
	const cred, token = "cred-0123456789-secret", "issued.token.abcdefgh"
	tcs := []struct {
		desc    string
		produce func(h *Hygiene)
		want    string
	}{
		{desc: "clean", produce: func(h *Hygiene) {
			log, _ := h.Logger("logs")
			log.Info("token obtained", zap.String("token", "sha256:1a2b"))
			h.Add("/readyz", `{"ready":true}`)
			h.Err("error", errors.New("HTTP 400: invalid_grant"))
			h.Err("nil error", nil)
		}},
		{desc: "log line after the hand-over", produce: func(h *Hygiene) {
			log, _ := h.Logger("logs")
			log.Warn("oops", zap.String("v", "x"+cred[3:11]+"y"))
		}, want: "logs contains"},
		{desc: "token learned during the test", produce: func(h *Hygiene) {
			h.Secret(token)
			h.Add("/metrics", "credproxy_info{token=\"issued.t\"} 1")
		}, want: "/metrics contains"},
		{desc: "error string", produce: func(h *Hygiene) {
			h.Err("503 body", fmt.Errorf("exchange: %s", cred))
		}, want: "503 body contains"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			r := &recorder{TB: t}
			h := NewHygiene(r, cred, "")
			tc.produce(h)
			if h.Texts() == 0 {
				t.Fatal("nothing gathered")
			}
			r.end()
			got := strings.Join(r.errs, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("failures %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAssertNoSecretsFindsEveryEncoding: a secret leaks as it is, or
// escaped, encoded or disguised the way a log line, URL or header could
// carry it; each form is found, and texts that only look alike are not.
func TestAssertNoSecretsFindsEveryEncoding(t *testing.T) {
	const cred = "cred/0123+4567 secret?&="
	basic := func(enc *base64.Encoding, id string) string { return enc.EncodeToString([]byte(id + ":" + cred)) }
	leaks := map[string]string{
		"raw":                     "x" + cred + "y",
		"a middle piece":          "..." + cred[5:13] + "...",
		"upper-cased":             strings.ToUpper(cred),
		"split by a line break":   cred[:10] + "\n" + cred[10:],
		"split by a zero-width":   cred[:10] + "\u200b" + cred[10:],
		"query-escaped":           "q=" + url.QueryEscape(cred),
		"path-escaped":            "/p/" + url.PathEscape(cred),
		"hex":                     hex.EncodeToString([]byte(cred)),
		"HEX":                     strings.ToUpper(hex.EncodeToString([]byte(cred))),
		"base64":                  base64.StdEncoding.EncodeToString([]byte(cred)),
		"base64url, no padding":   base64.RawURLEncoding.EncodeToString([]byte(cred)),
		"Basic pair, id of 2":     "Basic " + basic(base64.StdEncoding, "ab"),
		"Basic pair, id of 3":     "Basic " + basic(base64.StdEncoding, "abc"),
		"Basic pair, id of 4":     "Basic " + basic(base64.StdEncoding, "abcd"),
		"base64url pair, id of 7": basic(base64.URLEncoding, "client7"),
		"JSON-escaped in a log":   fmt.Sprintf("%q", cred),
		"every byte %-encoded":    percentEvery(cred),
	}
	for desc, text := range leaks {
		t.Run(desc, func(t *testing.T) {
			r := &recorder{TB: t}
			AssertNoSecrets(r, "text", text, cred)
			if len(r.errs) != 1 || !strings.Contains(r.errs[0], "text contains") {
				t.Errorf("%q: failures %q, want one", text, r.errs)
			}
		})
	}
	clean := []string{
		"token obtained, sha256:" + fmt.Sprintf("%x", sha256.Sum256([]byte(cred)))[:12],
		base64.StdEncoding.EncodeToString([]byte("another value of the same length")),
		"cred/01",
	}
	for _, text := range clean {
		r := &recorder{TB: t}
		AssertNoSecrets(r, "text", text, cred)
		if len(r.errs) != 0 {
			t.Errorf("%q: failures %q, want none", text, r.errs)
		}
	}
}

func percentEvery(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		fmt.Fprintf(&b, "%%%02X", v[i])
	}
	return b.String()
}

// TestLeakFindsEveryShape: each Shape of a secret is found whole, and its
// middle half, inside other text.
func TestLeakFindsEveryShape(t *testing.T) {
	for _, cred := range []string{"Cred-0123+4567/secret=É", "sh0rt"} {
		for _, sh := range Shapes(cred) {
			t.Run(cred+"/"+sh.Name, func(t *testing.T) {
				if p, _ := Leak("message: "+sh.Text+" (end)", cred); p == "" {
					t.Errorf("%q not found", sh.Text)
				}
				if len(cred) < 16 {
					return
				}
				mid := sh.Text[len(sh.Text)/4 : len(sh.Text)*3/4]
				if p, _ := Leak("message: "+mid+" (end)", cred); p == "" {
					t.Errorf("piece %q not found", mid)
				}
			})
		}
	}
}

// TestLeakDecimalNeedsSeparators: digits run together are not taken for
// decimal bytes (a log's timestamps would match by chance), while the
// same numbers separated are.
func TestLeakDecimalNeedsSeparators(t *testing.T) {
	const cred = "abcdefgh"
	if p, f := Leak(`{"ts":979899100101102103104}`, cred); p != "" {
		t.Errorf("digits run together: found %q (%s)", p, f)
	}
	if p, _ := Leak("[97, 98, 99, 100]", cred); p == "" {
		t.Errorf("separated decimal bytes not found")
	}
}

// TestLeakLongerPiecesForWideEncodings: a piece of an encoding that
// spends more than two characters on a byte must hold 4 bytes of the
// secret: a clock's 00:30:00 is not the UTF-16 of a token's "0".
func TestLeakLongerPiecesForWideEncodings(t *testing.T) {
	if p, f := Leak("expires 2026-01-01 00:30:00, 00-30-00", "tok-10"); p != "" {
		t.Errorf("found %q (%s)", p, f)
	}
	if p, _ := Leak("74:00:6f:00:6b:00:2d:00", "tok-10"); p == "" {
		t.Errorf("four characters' UTF-16LE hex not found")
	}
}
