package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/credproxy/credproxy/internal/pathclean"
)

// dotSegmentGuard makes a reverse route's base path a boundary: the
// client's path has its dot segments removed (pathclean, RFC 3986 5.2.4,
// with %2E read as a dot) before it is joined to UPSTREAM's path, so that
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
			clean, ok := pathclean.RemoveDotSegments(escaped)
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
