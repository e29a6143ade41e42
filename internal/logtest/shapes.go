package logtest

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Shape is one way of writing a secret into a text.
type Shape struct {
	// Name says which encoding it is, for a test's report.
	Name string
	// Text is the secret in that encoding.
	Text string
}

// Shapes returns s written in every encoding that a service, a WAF or a
// library could echo it in and that the leak checks look for: for tests
// whose fakes echo a secret, so that they exercise each. Each encoder is
// written here on its own, independently of the matching code, from the
// standard library where it has one.
func Shapes(s string) []Shape {
	b := []byte(s)
	le, be := shapeUTF16(s, binary.LittleEndian), shapeUTF16(s, binary.BigEndian)
	return []Shape{
		{"raw", s},
		{"query-escaped", url.QueryEscape(s)},
		{"every byte %-encoded", eachByte(b, "%%%02X", "")},
		{"Go-quoted", strconv.Quote(s)},
		{`every character \u-escaped`, eachUTF16(s, `\u%04x`)},
		{"HTML decimal entities", eachRune(s, "&#%d;")},
		{"HTML hex entities", eachRune(s, "&#x%X;")},
		{"hex", hex.EncodeToString(b)},
		{"hex with colons", eachByte(b, "%02x", ":")},
		{"HEX with spaces", eachByte(b, "%02X", " ")},
		{"hex with dashes", eachByte(b, "%02x", "-")},
		{"base64", base64.StdEncoding.EncodeToString(b)},
		{"base64url without padding", base64.RawURLEncoding.EncodeToString(b)},
		{"base32", base32.StdEncoding.EncodeToString(b)},
		{"base32 without padding", base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)},
		{"base32 lower-case", strings.ToLower(base32.StdEncoding.EncodeToString(b))},
		{"UTF-16LE hex", hex.EncodeToString(le)},
		{"UTF-16BE hex", hex.EncodeToString(be)},
		{"UTF-16LE base64", base64.StdEncoding.EncodeToString(le)},
		{"UTF-16BE base64", base64.StdEncoding.EncodeToString(be)},
		{"decimal bytes with spaces", eachByte(b, "%d", " ")},
		{"decimal bytes with commas", eachByte(b, "%d", ",")},
		{"reversed", shapeReverse(s)},
	}
}

func eachByte(b []byte, format, sep string) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf(format, c)
	}
	return strings.Join(parts, sep)
}

func eachRune(s, format string) string {
	var sb strings.Builder
	for _, r := range s {
		fmt.Fprintf(&sb, format, r)
	}
	return sb.String()
}

// eachUTF16 writes each UTF-16 code unit of s, as JSON escapes a
// character outside the Basic Multilingual Plane: a surrogate pair.
func eachUTF16(s, format string) string {
	var sb strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&sb, format, u)
	}
	return sb.String()
}

func shapeUTF16(s string, order binary.AppendByteOrder) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		out = order.AppendUint16(out, u)
	}
	return out
}

func shapeReverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}
