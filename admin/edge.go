package admin

import (
	"fmt"
	"slices"
	"strings"
)

// RouteEdge is what guards a route at credproxy's local edge
// (docs/design.md "The local edge"), as the admin listener reports it.
type RouteEdge struct {
	// Keys is set when the route takes client keys (CLIENT_KEYS_FILE).
	Keys bool
	// Policy is set when a request policy (ALLOW) restricts the route.
	Policy bool
	// Peers is set when the route admits only some unix-socket callers
	// (ALLOW_UIDS, ALLOW_GIDS).
	Peers bool
	// Denied returns the route's refused requests so far by reason (the
	// credproxy_requests_denied_total counter); nil reports none. It is
	// called at every request, concurrently.
	Denied func() map[string]uint64
}

// edgeView is a route's edge in /readyz and /status.json.
type edgeView struct {
	ClientKeys bool              `json:"client_keys"`
	Policy     bool              `json:"policy"`
	PeerCheck  bool              `json:"peer_check"`
	Denied     map[string]uint64 `json:"denied,omitempty"`
}

func (e RouteEdge) view() edgeView {
	v := edgeView{ClientKeys: e.Keys, Policy: e.Policy, PeerCheck: e.Peers}
	if e.Denied != nil {
		for reason, n := range e.Denied() {
			if n > 0 {
				if v.Denied == nil {
					v.Denied = map[string]uint64{}
				}
				v.Denied[reason] = n
			}
		}
	}
	return v
}

// edgeCell is a route's edge on the status page: the guards that are on
// ("open" when none), and the denials by reason, in reason order.
type edgeCell struct {
	Guards []string
	// Denied is the total refused; Reasons each reason with its count.
	Denied  uint64
	Reasons []edgeReason
	// Title explains the guards, for the cell's tooltip.
	Title string
}

func newEdgeCell(v edgeView) edgeCell {
	var c edgeCell
	var why []string
	for _, g := range []struct {
		on         bool
		name, what string
	}{
		{v.ClientKeys, "keys", "client keys (CLIENT_KEYS_FILE)"},
		{v.Policy, "policy", "request policy (ALLOW)"},
		{v.PeerCheck, "peers", "unix-socket callers checked (ALLOW_UIDS, ALLOW_GIDS)"},
	} {
		if g.on {
			c.Guards = append(c.Guards, g.name)
			why = append(why, g.what)
		}
	}
	c.Title = "no client keys, request policy or peer check: any caller that reaches the listener spends the credential"
	if len(why) > 0 {
		c.Title = strings.Join(why, "; ")
	}
	reasons := make([]string, 0, len(v.Denied))
	for r := range v.Denied {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		c.Denied += v.Denied[r]
		label := reasonLabels[r]
		if label == "" {
			label = r
		}
		c.Reasons = append(c.Reasons, edgeReason{Reason: r, Text: fmt.Sprintf("%s %d", label, v.Denied[r])})
	}
	return c
}

// edgeReason is one reason's count on the page: a short label, the
// reason (the error code) in its tooltip.
type edgeReason struct{ Reason, Text string }

// reasonLabels are the short labels of the refusals' error codes, which
// do not fit a narrow column.
var reasonLabels = map[string]string{
	"denied_by_policy":        "policy",
	"client_key_required":     "no key",
	"caller_not_allowed":      "caller",
	"browser_request_refused": "browser",
}
