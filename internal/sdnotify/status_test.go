package sdnotify

import (
	"strings"
	"testing"
)

// TestWaitingStatus: the STATUS= text while routes wait for their first
// token names each route and its last error, and stays one short line
// however long the errors.
func TestWaitingStatus(t *testing.T) {
	long := "csp api-token exchange: " + strings.Repeat("x", 500)
	for _, tc := range []struct {
		desc    string
		pending []Pending
		want    string
	}{
		{desc: "none", want: ""},
		{desc: "one, first exchange under way", pending: []Pending{{Route: "default"}},
			want: "waiting for the first token of route default"},
		{desc: "one failing", pending: []Pending{{Route: "default", LastError: "csp api-token exchange: HTTP 401 invalid_grant"}},
			want: "waiting for the first token of route default (last error: csp api-token exchange: HTTP 401 invalid_grant)"},
		{desc: "two", pending: []Pending{{Route: "api", LastError: "lookup x: no such host"}, {Route: "ingest"}},
			want: "waiting for the first token of 2 routes: api (last error: lookup x: no such host); ingest"},
		{desc: "a newline in an error", pending: []Pending{{Route: "a", LastError: "one\ntwo"}},
			want: "waiting for the first token of route a (last error: one two)"},
	} {
		if got := WaitingStatus(tc.pending); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.desc, got, tc.want)
		}
	}
	got := WaitingStatus([]Pending{{Route: "a", LastError: long}, {Route: "b", LastError: long}})
	if len(got) > maxStatus || !strings.HasPrefix(got, "waiting for the first token of 2 routes: a (last error: csp api-token exchange: xxx") || !strings.Contains(got, "…") {
		t.Errorf("long errors: %d bytes %q, want at most %d, shortened with …", len(got), got, maxStatus)
	}
}
