package sdnotify

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxStatus bounds a STATUS= text: `systemctl status` shows it on one
// line, and an error from an identity service can be long.
const maxStatus = 400

// Pending is a route that holds no token yet, for WaitingStatus.
type Pending struct {
	// Route is the route's name.
	Route string
	// LastError is the last exchange's error, without secrets (the
	// text /readyz shows); empty while the first exchange is under way.
	LastError string
}

// WaitingStatus is the STATUS= text while credproxy waits for routes'
// first tokens, so that `systemctl status credproxy` says what holds the
// start: "waiting for the first token of route default (last error:
// ...)", or of "N routes: a (last error: ...); b". Empty for no route.
// Each error is shortened so that the whole stays within maxStatus
// bytes.
func WaitingStatus(pending []Pending) string {
	var head string
	switch len(pending) {
	case 0:
		return ""
	case 1:
		head = "waiting for the first token of route "
	default:
		head = fmt.Sprintf("waiting for the first token of %d routes: ", len(pending))
	}
	// What is left for errors, shared evenly.
	room := maxStatus - len(head)
	for _, p := range pending {
		room -= len(p.Route) + len(" (last error: )") + len("; ")
	}
	per := max(room/len(pending), 20)
	parts := make([]string, len(pending))
	for i, p := range pending {
		parts[i] = p.Route
		if p.LastError != "" {
			parts[i] += " (last error: " + shorten(oneLine(p.LastError), per) + ")"
		}
	}
	return shorten(head+strings.Join(parts, "; "), maxStatus)
}

// oneLine turns line breaks into spaces.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// shorten cuts s to at most n bytes, at a rune boundary, ending in "…".
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := max(n-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
