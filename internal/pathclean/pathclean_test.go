package pathclean

import (
	"testing"
)

// TestRemoveDotSegments: the proxy's forwarding form, rows from the base
// path guard's test in proxy (what reaches /base/...).
func TestRemoveDotSegments(t *testing.T) {
	tcs := []struct {
		in, want string
		ok       bool
	}{
		{"/../x", "/x", true},
		{"/%2e%2e/x", "/x", true},
		{"/%2E./x", "/x", true},
		{"/a/../../../x", "/x", true},
		{"/a/./b", "/a/b", true},
		{"/a/b/..", "/a/", true},
		{"/..", "/", true},
		{"", "/", true},
		{"/v1/chart.json", "/v1/chart.json", true},
		{"/a%2Fb", "/a%2Fb", true},
		{"/a//b", "/a//b", true},
		{"/a;v=1/b", "/a;v=1/b", true},
		{"/a%2520b", "/a%2520b", true},
		{"/..%2fx", "", false},
		{"/..%5cx", "", false},
		{"/a/%2e%2e%2f%2e%2e%2fx", "", false},
		{"/..;/admin", "", false},
		{"/%2e%2e;/admin", "", false},
		{"/.;x/admin", "", false},
		{"/%252e%252e%252fadmin", "", false},
		{"/a/..%252f..%252fadmin", "", false},
		{"/%252e%252e/admin", "", false},
	}
	for _, tc := range tcs {
		got, ok := RemoveDotSegments(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RemoveDotSegments(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestClean: the matching form is decoded, has no dot segments and no
// runs of slashes, and is refused where the segments are ambiguous.
func TestClean(t *testing.T) {
	tcs := []struct {
		desc, in, want string
		ok             bool
	}{
		{"plain", "/v2/datapoint", "/v2/datapoint", true},
		{"root", "/", "/", true},
		{"trailing slash kept", "/v2/", "/v2/", true},
		{"dots inside a name", "/v1/chart.json", "/v1/chart.json", true},
		{"dot segment", "/a/./b", "/a/b", true},
		{"dot-dot", "/a/b/../c", "/a/c", true},
		{"dot-dot above root", "/../../x", "/x", true},
		{"encoded dot-dot", "/a/%2E%2e/x", "/x", true},
		{"trailing dot-dot", "/a/b/..", "/a/", true},
		{"double slash", "/a//b", "/a/b", true},
		{"many slashes", "///a///b//", "/a/b/", true},
		{"decoded", "/a%20b/%7Ex", "/a b/~x", true},
		{"encoded percent stays one", "/a%2520b", "/a%20b", true},
		{"path parameters kept", "/a;v=1/b", "/a;v=1/b", true},
		{"hidden behind %2F", "/..%2Fadmin", "", false},
		{"path parameters on dot-dot", "/..;/admin", "", false},
		{"encoded twice", "/%252e%252e/admin", "", false},
		{"encoded slash", "/a%2Fb", "", false},
		{"encoded backslash", "/a%5cb", "", false},
		{"raw backslash", "/a\\b", "", false},
		{"empty segment and dot-dot", "/a//b/../../c", "", false},
		{"bad escape", "/a%zz", "", false},
		{"bad escape in a plain-looking path", "/a%", "", false},
		{"not absolute", "a/b", "", false},
		{"empty", "", "", false},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := Clean(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Clean(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestCleanIsIdempotentOnPlainPaths: a clean path that holds no '%' is
// its own matching form.
func TestCleanIsIdempotentOnPlainPaths(t *testing.T) {
	for _, p := range []string{"/", "/a", "/a/b/", "/a b/c", "/v1/chart.json"} {
		got, ok := Clean(p)
		if !ok || got != p {
			t.Errorf("Clean(%q) = %q, %v", p, got, ok)
		}
		again, ok := Clean(got)
		if !ok || again != got {
			t.Errorf("Clean(Clean(%q)) = %q, %v", p, again, ok)
		}
	}
}

func TestCleanPlainDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { Clean("/api/v2/source/host-1/tags") }); n != 0 {
		t.Errorf("Clean of a plain path allocates %v times", n)
	}
}

func BenchmarkClean(b *testing.B) {
	for _, p := range []string{"/api/v2/source/host-1/tags", "/api/v2/../v2/source/%2Ehost/./tags"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Clean(p)
			}
		})
	}
}
