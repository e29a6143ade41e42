// Package suggest finds the word a typo was meant to be: the nearest
// known name by edit distance, for credproxy's "did you mean" hints on
// variable names (config) and commands (cmd/credproxy).
package suggest

import "iter"

// Closest returns the candidate nearest to word, at an edit distance of
// at most maxDist, or "" when none is that near. Of several at the same
// distance it returns the alphabetically first, so that the answer does
// not depend on the order of candidates (a map's keys, say).
func Closest(word string, candidates iter.Seq[string], maxDist int) string {
	best, bestD := "", maxDist+1
	for c := range candidates {
		// With the limit one above bestD, d == bestD is an exact tie.
		if d := Distance(word, c, bestD+1); d < bestD || (d == bestD && best != "" && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// Distance is the Levenshtein distance of a and b (in bytes), or a value
// of at least limit when it is limit or more; the cut-off keeps a search
// among many candidates cheap.
func Distance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
