// Package pathclean is credproxy's one normaliser of request paths: the
// reverse proxy's base-path guard forwards what RemoveDotSegments leaves,
// and the request policy (package edge) matches what Clean leaves, so the
// two can never disagree about which dot segments a path holds.
package pathclean

import (
	"net/url"
	"strings"
)

// RemoveDotSegments removes the "." and ".." segments of an escaped path
// (RFC 3986 5.2.4, with %2E read as a dot) and returns the path still
// escaped. It reports false when the path hides a dot segment an upstream
// may see: a segment that, decoded, splits at a slash or backslash into
// one (..%2F, ..%5C); one with path parameters (..;x, which Tomcat, Jetty
// and Spring read as ".."); or one encoded twice (%252e%252e). A ".."
// never climbs above the root. Empty segments ("//") are kept: this is
// the form the proxy forwards.
func RemoveDotSegments(escaped string) (string, bool) {
	segs := strings.Split(escaped, "/")
	out := make([]string, 0, len(segs))
	// A path that ends in a dot segment ends in a slash once it is gone.
	trailing := false
	for i, seg := range segs {
		if i == 0 {
			out = append(out, seg) // "" before the leading slash
			continue
		}
		last := i == len(segs)-1
		switch dots(seg) {
		case 1:
			trailing = last
			continue
		case 2:
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			trailing = last
			continue
		}
		if hidesDotSegment(seg) {
			return "", false
		}
		out = append(out, seg)
		trailing = false
	}
	p := strings.Join(out, "/")
	if trailing || p == "" {
		p += "/"
	}
	return p, true
}

// dots tells whether an escaped segment is "." (1), ".." (2) or neither (0).
func dots(seg string) int {
	seg = strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", ".")
	switch seg {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
}

// hidesDotSegment reports whether an escaped segment hides a dot segment
// that an upstream may see: decoded, it splits at a slash or backslash
// into one; or it is one with path parameters ("..;x"); or it is encoded
// twice (%252e%252e) and decoding it again shows one.
func hidesDotSegment(seg string) bool {
	dec, err := url.PathUnescape(seg)
	if err != nil {
		return false // left for the upstream to refuse
	}
	for part := range strings.FieldsFuncSeq(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
		if p, _, _ := strings.Cut(part, ";"); p == "." || p == ".." {
			return true
		}
	}
	if dec != seg && strings.Contains(dec, "%") {
		return dots(dec) != 0 || hidesDotSegment(dec)
	}
	return false
}

// Clean returns the decoded form of an escaped path that rules are matched
// against: dot segments removed as RemoveDotSegments does (refusing the
// same hidden forms), runs of slashes collapsed to one ("/a//b" is
// "/a/b"; a trailing slash is kept), then percent-decoded.
//
// It also reports false for a path holding both an empty segment and a
// ".." ("/a//b/../../c"): removing dot segments first gives /a/c,
// collapsing slashes first gives /c, and upstreams differ in the order.
// And for a path that is not validly escaped, and for a
// segment that holds a slash or a backslash once decoded (a%2Fb, a%5Cb,
// a\b): an upstream may read such a segment as one or as two, so the
// decoded path could not say which segments the upstream sees, and a
// rule allowing /a/b must not be met by /a%2Fb. Callers matching rules
// deny what Clean refuses.
//
// A path that needs none of this (no '%', no '\', no "//", no segment
// starting with '.') is returned as it is, without allocating.
func Clean(escaped string) (string, bool) {
	if !strings.HasPrefix(escaped, "/") {
		return "", false
	}
	if plain(escaped) {
		return escaped, true
	}
	if strings.Contains(escaped, "//") && hasDotDot(escaped) {
		return "", false
	}
	p, ok := RemoveDotSegments(escaped)
	if !ok {
		return "", false
	}
	p = collapseSlashes(p)
	var b strings.Builder
	b.Grow(len(p))
	for i, seg := range strings.Split(p, "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil || strings.ContainsAny(dec, "/\\") {
			return "", false
		}
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(dec)
	}
	return b.String(), true
}

// plain reports whether Clean would return p unchanged: p holds no '%' or
// '\', no empty segment but a trailing one, and no segment starting with
// '.' (the only ones that can be, or hide, a dot segment once '%' is out).
func plain(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%', '\\':
			return false
		case '/':
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				return false
			}
		}
	}
	return true
}

// collapseSlashes replaces every run of slashes in p with one.
func collapseSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// hasDotDot reports whether an escaped path has a ".." segment (%2E too).
func hasDotDot(escaped string) bool {
	for seg := range strings.SplitSeq(escaped, "/") {
		if dots(seg) == 2 {
			return true
		}
	}
	return false
}
