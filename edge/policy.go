package edge

import (
	"fmt"
	"strings"

	"github.com/credproxy/credproxy/internal/pathclean"
)

// Policy is a route's compiled ALLOW list: the calls a caller may make
// with the route's credential. It is immutable once ParsePolicy returns
// it, so any number of goroutines may call its methods at once.
//
// The nil *Policy and the zero Policy have no rules and allow every call:
// the feature is off. A Policy with rules allows a call when any rule
// matches it and denies it otherwise.
//
// Rules are matched against the path's matching form (pathclean.Clean):
// decoded, dot segments removed, runs of slashes collapsed. A path that
// Clean refuses (an encoded separator such as a%2Fb, a hidden dot
// segment, "//" with "..", a bad escape) is denied: an upstream could
// read it as another path than the one a rule was checked against.
type Policy struct {
	rules []rule
}

// rule is one compiled "METHOD /path" rule.
type rule struct {
	// method is an upper-case method token, or "" for any ("*").
	method string
	// segs are the path's segments after the leading slash: literal
	// text, "*" (exactly one non-empty segment) or "**" (zero or more
	// segments, at most once per rule). "/" is one empty segment.
	segs []string
}

// Denial says why Check refused a call.
type Denial struct {
	// Method is the request's method.
	Method string
	// Path is the cleaned path the rules saw (never a query), or the
	// escaped path as sent when it has no cleaned form.
	Path string
}

// Reason is the 403 body's error text: "denied_by_policy: GET /v2/x".
func (d Denial) Reason() string { return "denied_by_policy: " + d.Method + " " + d.Path }

// ParsePolicy compiles ALLOW's value: a comma list of "METHOD /path"
// rules, such as "GET /v2/**, POST /v2/datapoint, * /api/v2/source/*".
// An empty or blank value gives a nil *Policy, which allows everything.
//
// A rule is a method and a path separated by white space. The method is
// "*" (any) or an upper-case token: methods are case-sensitive, so "get"
// is refused rather than silently meaning another method than GET. HEAD
// is a method of its own; list it if GET's callers send it. The path
// starts with '/' and is written decoded (no '%', no query, no
// fragment). A segment that is "*" matches exactly one non-empty
// segment; "**" matches zero or more segments and may appear once per
// rule (so matching stays linear); a '*' inside a segment is refused. A
// trailing slash is significant ("/v2/" matches only "/v2/"; "/v2/**"
// matches "/v2", "/v2/" and everything below).
//
// A rule that could never match a cleaned path ("/a//b", "/a/./b",
// "/a/../b", a backslash) is refused: it would silently allow nothing.
// Errors name the rule and are meant to be prefixed with the variable's
// name.
func ParsePolicy(s string) (*Policy, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var p Policy
	for i, text := range strings.Split(s, ",") {
		text = strings.TrimSpace(text)
		if text == "" {
			return nil, fmt.Errorf("rule %d is empty (a comma too many?)", i+1)
		}
		r, err := parseRule(text)
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", text, err)
		}
		p.rules = append(p.rules, r)
	}
	return &p, nil
}

// parseRule compiles one trimmed, non-empty rule.
func parseRule(text string) (rule, error) {
	f := strings.Fields(text)
	if len(f) != 2 {
		return rule{}, fmt.Errorf("want METHOD /path, separated by a space")
	}
	method, path := f[0], f[1]
	if err := checkMethod(method); err != nil {
		return rule{}, err
	}
	segs, err := parseRulePath(path)
	if err != nil {
		return rule{}, err
	}
	if method == "*" {
		method = ""
	}
	return rule{method: method, segs: segs}, nil
}

// checkMethod accepts "*" or an upper-case HTTP token.
func checkMethod(m string) error {
	if m == "*" {
		return nil
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case c >= 'a' && c <= 'z':
			return fmt.Errorf("method %q is not upper-case (methods are case-sensitive; write %s)", m, strings.ToUpper(m))
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return fmt.Errorf("method %q is not an HTTP method token", m)
		}
	}
	return nil
}

// parseRulePath checks a rule's path and splits it into segments.
func parseRulePath(path string) ([]string, error) {
	switch {
	case !strings.HasPrefix(path, "/"):
		return nil, fmt.Errorf("the path must start with /")
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("the path must not hold a query or fragment (rules match the path only)")
	case strings.Contains(path, "%"):
		return nil, fmt.Errorf("write the path decoded, without percent-escapes (rules match the decoded path)")
	case strings.Contains(path, "\\"):
		return nil, fmt.Errorf("a path with a backslash can never match (such paths are denied)")
	}
	segs := strings.Split(path[1:], "/")
	globstars := 0
	for i, seg := range segs {
		switch {
		case seg == "" && i < len(segs)-1:
			return nil, fmt.Errorf("an empty segment (//) can never match: paths are matched with slashes collapsed")
		case seg == "." || seg == "..":
			return nil, fmt.Errorf("a %q segment can never match: paths are matched with dot segments removed", seg)
		case seg == "**":
			globstars++
		case seg != "*" && strings.Contains(seg, "*"):
			return nil, fmt.Errorf("* and ** stand for whole segments only, not part of %q", seg)
		}
	}
	if globstars > 1 {
		return nil, fmt.Errorf("** may appear once per rule")
	}
	return segs, nil
}

// Enabled reports whether p has rules, that is whether it denies anything.
func (p *Policy) Enabled() bool { return p != nil && len(p.rules) > 0 }

// Check decides a call from its method and its escaped path
// (r.URL.EscapedPath(), never RequestURI: the query plays no part). It
// allows every call when p has no rules. Otherwise it cleans the path
// (pathclean.Clean; "" counts as "/"), denies what cannot be cleaned and
// allows what a rule matches. An allowed call costs no allocation when
// its path is already clean.
func (p *Policy) Check(method, escapedPath string) (Denial, bool) {
	if !p.Enabled() {
		return Denial{}, true
	}
	if escapedPath == "" {
		escapedPath = "/"
	}
	clean, ok := pathclean.Clean(escapedPath)
	if !ok {
		return Denial{Method: method, Path: escapedPath}, false
	}
	if p.Match(method, clean) {
		return Denial{}, true
	}
	return Denial{Method: method, Path: clean}, false
}

// Match reports whether a rule of p allows method on cleanedPath, a path
// in pathclean.Clean's form (use Check for a path from a request). A
// Policy without rules matches everything.
func (p *Policy) Match(method, cleanedPath string) bool {
	if !p.Enabled() {
		return true
	}
	if !strings.HasPrefix(cleanedPath, "/") {
		return false
	}
	for i := range p.rules {
		r := &p.rules[i]
		if (r.method == "" || r.method == method) && matchSegs(r.segs, cleanedPath[1:], true) {
			return true
		}
	}
	return false
}

// matchSegs reports whether segs match the rest of a path: rest holds
// the remaining segments joined by '/', and more is false when none is
// left (which differs from one empty segment, rest "" with more true).
func matchSegs(segs []string, rest string, more bool) bool {
	for len(segs) > 0 {
		s := segs[0]
		if s == "**" {
			if len(segs) == 1 {
				return true
			}
			for {
				if matchSegs(segs[1:], rest, more) {
					return true
				}
				if !more {
					return false
				}
				_, rest, more = strings.Cut(rest, "/")
			}
		}
		if !more {
			return false
		}
		seg, after, next := strings.Cut(rest, "/")
		if s == "*" && seg == "" || s != "*" && s != seg {
			return false
		}
		segs, rest, more = segs[1:], after, next
	}
	return !more
}
