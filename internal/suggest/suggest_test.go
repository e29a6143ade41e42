package suggest

import (
	"slices"
	"testing"
)

func TestDistance(t *testing.T) {
	tcs := []struct {
		a, b  string
		limit int
		want  int
	}{
		{a: "", b: "", limit: 3, want: 0},
		{a: "abc", b: "abc", limit: 3, want: 0},
		{a: "TOKN", b: "TOKEN", limit: 3, want: 1},
		{a: "kitten", b: "sitting", limit: 4, want: 3},
		{a: "kitten", b: "sitting", limit: 3, want: 3},
		{a: "kitten", b: "sitting", limit: 2, want: 2},
		{a: "a", b: "abcdef", limit: 3, want: 3},
		{a: "abcdef", b: "ghijkl", limit: 10, want: 6},
	}
	for _, tc := range tcs {
		if got := Distance(tc.a, tc.b, tc.limit); got != tc.want {
			t.Errorf("Distance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.limit, got, tc.want)
		}
	}
}

func TestClosest(t *testing.T) {
	words := []string{"run", "check", "token", "ca", "exec", "demo", "version", "help"}
	tcs := []struct {
		word    string
		maxDist int
		want    string
	}{
		{word: "chek", maxDist: 2, want: "check"},
		{word: "check", maxDist: 2, want: "check"},
		{word: "tokne", maxDist: 2, want: "token"},
		{word: "frobnicate", maxDist: 2, want: ""},
		{word: "xx", maxDist: 0, want: ""},
		{word: "cx", maxDist: 1, want: "ca"},
		// A tie goes to the alphabetically first.
		{word: "eco", maxDist: 2, want: "ca"}, // ca, demo and exec are all 2 away
	}
	for _, tc := range tcs {
		if got := Closest(tc.word, slices.Values(words), tc.maxDist); got != tc.want {
			t.Errorf("Closest(%q, %d) = %q, want %q", tc.word, tc.maxDist, got, tc.want)
		}
	}
}
