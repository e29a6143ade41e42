package tokenapi

import (
	"net/http"
	"time"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/internal/listen"
	"github.com/credproxy/credproxy/internal/secret"
)

// auditEvent is the audit log's record of one answer to r: who asked
// (the remote address, and on a unix socket the peer the kernel named),
// for what, and what they got. tok is the token handed out, if any: the
// auditor writes only its fingerprint.
func auditEvent(r *http.Request, via edge.Via, start time.Time, route string, status int, d edge.Decision, tok secret.Secret) edge.Event {
	ev := edge.Event{
		Time: start, Route: route, Via: via, Caller: r.RemoteAddr,
		Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Status: status, Decision: d, Duration: time.Since(start), Token: tok,
	}
	if p, ok := listen.PeerFrom(r.Context()); ok && p.Known {
		ev.Peer = edge.Peer{Known: true, UID: uint32(p.UID), GID: uint32(p.GID), PID: int32(p.PID)}
	}
	return ev
}

// record hands ev to opts' Record hook, when there is one.
func (o Options) record(ev edge.Event) {
	if o.Record != nil {
		o.Record(ev)
	}
}
