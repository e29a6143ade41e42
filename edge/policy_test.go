package edge

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/credproxy/credproxy/internal/pathclean"
)

func TestParsePolicyErrors(t *testing.T) {
	tcs := []struct{ desc, in, want string }{
		{"empty rule between commas", "GET /a,,GET /b", "rule 2 is empty"},
		{"trailing comma", "GET /a,", "rule 2 is empty"},
		{"no space", "GET/a", `rule "GET/a": want METHOD /path`},
		{"three fields", "GET /a /b", `rule "GET /a /b": want METHOD /path`},
		{"path only", "/a", `rule "/a": want METHOD /path`},
		{"relative path", "GET a/b", `rule "GET a/b": the path must start with /`},
		{"glob inside a segment", "GET /a**b", `rule "GET /a**b": * and ** stand for whole segments only`},
		{"star inside a segment", "GET /v2/*.json", `rule "GET /v2/*.json": * and **`},
		{"two globstars", "GET /**/x/**", `rule "GET /**/x/**": ** may appear once`},
		{"lower-case method", "get /a", `rule "get /a": method "get" is not upper-case`},
		{"mixed-case method", "Post /a", `method "Post" is not upper-case`},
		{"not a token", "G@T /a", `method "G@T" is not an HTTP method token`},
		{"query", "GET /a?x=1", `rule "GET /a?x=1": the path must not hold a query`},
		{"fragment", "GET /a#x", "must not hold a query or fragment"},
		{"percent escape", "GET /a%2Fb", "write the path decoded"},
		{"backslash", `GET /a\b`, "can never match"},
		{"double slash", "GET /a//b", `rule "GET /a//b": an empty segment (//) can never match`},
		{"dot segment", "GET /a/./b", `rule "GET /a/./b": a "." segment can never match`},
		{"dot-dot segment", "GET /a/../b", `a ".." segment can never match`},
		{"trailing dot-dot", "GET /a/..", `a ".." segment can never match`},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			p, err := ParsePolicy(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParsePolicy(%q) = %v, %v; want an error containing %q", tc.in, p, err, tc.want)
			}
		})
	}
}

// TestPolicyCheck: the matching table, through Check (the path as a
// request carries it, escaped).
func TestPolicyCheck(t *testing.T) {
	p, err := ParsePolicy(" GET /v2/** ,POST /v2/datapoint, * /api/v2/source/*, DELETE /x/*/tags/, PUT /")
	if err != nil {
		t.Fatal(err)
	}
	tcs := []struct {
		method, path string
		allowed      bool
		reason       string
	}{
		{"GET", "/v2", true, ""},
		{"GET", "/v2/", true, ""},
		{"GET", "/v2/a/b/c", true, ""},
		{"GET", "/v2x", false, "denied_by_policy: GET /v2x"},
		{"HEAD", "/v2/a", false, "denied_by_policy: HEAD /v2/a"},
		{"POST", "/v2/datapoint", true, ""},
		{"POST", "/v2/datapoint/", false, "denied_by_policy: POST /v2/datapoint/"},
		{"POST", "/v2//datapoint", true, ""},
		{"POST", "/v2/x/../datapoint", true, ""},
		{"POST", "/v2/%64atapoint", true, ""},
		{"POST", "/v2/event", false, "denied_by_policy: POST /v2/event"},
		{"PATCH", "/api/v2/source/host-1", true, ""},
		{"PATCH", "/api/v2/source/", false, "denied_by_policy: PATCH /api/v2/source/"},
		{"PATCH", "/api/v2/source/a/b", false, "denied_by_policy: PATCH /api/v2/source/a/b"},
		{"PATCH", "/api/v2/source/a%2Fb", false, "denied_by_policy: PATCH /api/v2/source/a%2Fb"},
		{"DELETE", "/x/h1/tags/", true, ""},
		{"DELETE", "/x/h1/tags", false, "denied_by_policy: DELETE /x/h1/tags"},
		{"PUT", "/", true, ""},
		{"PUT", "", true, ""},
		{"PUT", "/a", false, "denied_by_policy: PUT /a"},
		{"get", "/v2/a", false, "denied_by_policy: get /v2/a"},
		{"GET", "/v2/..%2F..%2Fadmin", false, "denied_by_policy: GET /v2/..%2F..%2Fadmin"},
		{"GET", "/v2/../admin", false, "denied_by_policy: GET /admin"},
		{"GET", "/v2/%2e%2e/admin", false, "denied_by_policy: GET /admin"},
		{"GET", "/v2//../admin", false, "denied_by_policy: GET /v2//../admin"},
	}
	for _, tc := range tcs {
		d, ok := p.Check(tc.method, tc.path)
		if ok != tc.allowed || !ok && d.Reason() != tc.reason {
			t.Errorf("Check(%s %s) = %v %q; want %v %q", tc.method, tc.path, ok, d.Reason(), tc.allowed, tc.reason)
		}
	}
}

// TestPolicyOff: nil, zero and blank policies allow everything, even
// paths that have no cleaned form (the base-path guard deals with those).
func TestPolicyOff(t *testing.T) {
	blank, err := ParsePolicy("  ")
	if err != nil || blank != nil {
		t.Fatalf("ParsePolicy(blank) = %v, %v; want nil, nil", blank, err)
	}
	for _, p := range []*Policy{nil, {}, blank} {
		if p.Enabled() {
			t.Errorf("%v is enabled", p)
		}
		if _, ok := p.Check("DELETE", "/a%2Fb"); !ok || !p.Match("GET", "/x") {
			t.Errorf("%v denies", p)
		}
	}
}

func TestPolicyAllowDoesNotAllocate(t *testing.T) {
	p, err := ParsePolicy("GET /v2/**, POST /v2/datapoint, * /api/v2/source/*")
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { p.Check("PUT", "/api/v2/source/host-1") }); n != 0 {
		t.Errorf("an allowed call allocates %v times", n)
	}
}

func BenchmarkPolicyCheck(b *testing.B) {
	p, err := ParsePolicy("GET /v2/**, POST /v2/datapoint, PUT /api/v2/source/*/tags, * /api/v2/source/*, POST /v1/event")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, method, path string }{
		{"allow-first", "GET", "/v2/chart/abc/data"},
		{"allow-last", "POST", "/v1/event"},
		{"allow-encoded", "PUT", "/api/v2/source/h%31/./tags"},
		{"deny", "DELETE", "/v3/org/tokens"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Check(c.method, c.path)
			}
		})
	}
}

// fuzzPolicy is the policy FuzzPolicyNormaliser checks encodings against.
const fuzzPolicy = "GET /v2/**, POST /v2/datapoint, * /api/v2/source/*, DELETE /a/*/b/**/c, GET /"

// FuzzPolicyNormaliser: no re-encoding of a path reaches another decision
// than the path itself. For a path Clean accepts, every re-encoding of
// its cleaned form (random bytes percent-encoded, dots included; "//",
// "/./" and "x/../" inserted) that Clean accepts cleans to the same path,
// so the policy decides it the same way.
func FuzzPolicyNormaliser(f *testing.F) {
	p, err := ParsePolicy(fuzzPolicy)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/v2/datapoint", "/api/v2/source/h1", "/a/x/b/c", "/a/x/b/y/z/c", "/", "/v3/../v2/x", "/a%2Fb", "/%2e%2e/x", "/a b/%25/;x"} {
		f.Add(s, uint64(1))
	}
	f.Fuzz(func(t *testing.T, path string, seed uint64) {
		clean, ok := pathclean.Clean(path)
		if !ok && path != "" { // Check reads "" as "/"
			if _, allowed := p.Check("GET", path); allowed {
				t.Fatalf("Check allowed %q, which Clean refuses", path)
			}
		}
		if !ok {
			return
		}
		rng := rand.New(rand.NewPCG(seed, seed>>1|1))
		for range 8 {
			enc := reencode(rng, clean)
			got, ok := pathclean.Clean(enc)
			if !ok {
				continue
			}
			if got != clean {
				t.Fatalf("%q cleans to %q, its re-encoding %q to %q", path, clean, enc, got)
			}
			for _, m := range []string{"GET", "POST", "DELETE"} {
				if p.Match(m, got) != p.Match(m, clean) {
					t.Fatalf("%s %q and %s %q are decided differently", m, clean, m, enc)
				}
			}
		}
	})
}

// reencode writes a cleaned (decoded) path another way: segments
// percent-encoded byte by byte at random ('%' always), with empty
// segments, "." segments and "x/.." pairs inserted between segments.
func reencode(rng *rand.Rand, clean string) string {
	var b strings.Builder
	for i, seg := range strings.Split(clean[1:], "/") {
		if i > 0 || rng.IntN(4) == 0 {
			switch rng.IntN(6) {
			case 0:
				b.WriteString("/")
			case 1:
				b.WriteString("/.")
			case 2:
				b.WriteString("/x/..")
			case 3:
				b.WriteString("/%2E")
			}
		}
		b.WriteByte('/')
		for j := 0; j < len(seg); j++ {
			c := seg[j]
			if c == '%' || rng.IntN(3) == 0 {
				b.WriteString("%" + hex2(c))
				continue
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789ABCDEF"
	if c&1 == 0 {
		return string([]byte{digits[c>>4], digits[c&15]})
	}
	return strings.ToLower(string([]byte{digits[c>>4], digits[c&15]}))
}
