package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// dotSegmentGuard makes a reverse route's base path a boundary: the
// client's path has its dot segments removed (RFC 3986 5.2.4, with %2E
// read as a dot) before it is joined to UPSTREAM's path, so that
// /../admin reaches https://h/base/admin, never https://h/admin. A path
// whose segments hide a dot segment behind an encoded separator
// (..%2F, ..%5C), path parameters (..;) or a second encoding (%252e%252e)
// is refused with 400: an upstream may read it as one and climb out.
type dotSegmentGuard struct {
	next  http.Handler
	route string
}

func (g *dotSegmentGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.RequestURI == "*" {
		// The HTTP/2 preface (PRI *) sent to this HTTP/1 listener; net/http
		// answers OPTIONS * itself. Neither names a resource upstream.
		writeError(w, http.StatusBadRequest, errorBody{Error: "bad_request", Route: g.route,
			Detail: "an asterisk-form request (" + r.Method + " *) names no resource to forward; for HTTP/2 use the forward proxy"})
		return
	}
	if r.URL.Opaque == "" {
		escaped := r.URL.EscapedPath()
		if strings.ContainsAny(escaped, ".%\\") {
			clean, ok := removeDotSegments(escaped)
			if !ok {
				writeError(w, http.StatusBadRequest, errorBody{Error: "bad_request", Route: g.route,
					Detail: "the path hides a dot segment (behind an encoded separator, path parameters or a second encoding)"})
				return
			}
			if clean != escaped {
				path, err := url.PathUnescape(clean)
				if err != nil {
					writeError(w, http.StatusBadRequest, errorBody{Error: "bad_request", Route: g.route, Detail: "the path is not validly escaped"})
					return
				}
				r.URL.Path, r.URL.RawPath = path, clean
			}
		}
	}
	g.next.ServeHTTP(w, r)
}

// removeDotSegments removes the "." and ".." segments of an escaped path,
// %2E counting as a dot. It reports false when a segment, once decoded,
// holds a separator next to a dot segment.
func removeDotSegments(escaped string) (string, bool) {
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
// into one; or it is one with path parameters ("..;x", which Tomcat,
// Jetty and Spring read as ".."); or it is encoded twice (%252e%252e) and
// decoding it again shows one.
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
