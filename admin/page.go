package admin

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/tokencache"
)

// pageTemplate is the status page. html/template escapes everything a
// route reports (names, upstream URLs, errors): they are text, never
// markup.
var pageTemplate = template.Must(template.ParseFS(static, "static/status.html"))

// pageView is what the status page template renders.
type pageView struct {
	// Now is the server's clock at rendering, from which the script
	// counts the times on the page on, whatever the browser's clock says.
	Now          string
	Overall      string
	OverallClass string
	Rendered     string
	// AuditLog is where the audit log goes: "off", "stdout" or a path.
	AuditLog string
	Routes   []pageRoute
}

// pageRoute is one route's row.
type pageRoute struct {
	Name, Kind, Upstream string
	// UpstreamParts is Upstream cut after each '/', '.', '-', '?' and
	// '&', where the page lets a long URL break (<wbr>) before it breaks
	// one anywhere.
	UpstreamParts []string
	// Via says how the route is reached, as the upstream's tooltip.
	Via      string
	State    tokencache.State
	Failures int
	Expires  moment
	// LastSuccess, LastAttempt and Next are the exchange times.
	LastSuccess, LastAttempt, Next moment
	Credential                     credentialCell
	Edge                           edgeCell
	LastError                      string
}

// moment is a time shown relative to now ("2m 19s ago", "in 48s",
// "27m 41s" left), which the page's script keeps counting.
type moment struct {
	// At is the time in RFC 3339, for the tooltip and the script; empty
	// when there is none, and then Text is fixed.
	At string
	// Rel is how the script counts At: "ago", "in" or "left".
	Rel  string
	Text string
	// Soon is set for a token with under a minute left.
	Soon bool
}

// credentialCell shows the days left of the long-lived credential.
type credentialCell struct {
	Known bool
	Text  string
	// Class is the pill's class: "soon" under 7 days, "expired" after.
	Class string
	Title string
}

// credentialSources says where a credential expiry came from.
var credentialSources = map[string]string{
	credexpiry.SourceConfig:   "set by CREDENTIAL_EXPIRES_AT",
	credexpiry.SourceLookup:   "reported by the identity service",
	credexpiry.SourceExchange: "reported with the last token",
}

// newPageView renders the routes' states at now.
func newPageView(routes []Route, auditLog string, stopping bool, now time.Time) pageView {
	v := pageView{Now: now.UTC().Format(time.RFC3339Nano), Rendered: now.UTC().Format("15:04:05 MST"), AuditLog: auditLog}
	ready := true
	for _, r := range routes {
		st := r.Status()
		ready = ready && st.Ready
		v.Routes = append(v.Routes, newPageRoute(r, st, now))
	}
	switch {
	case stopping:
		v.Overall, v.OverallClass = "shutting down", "notready"
	case ready:
		v.Overall, v.OverallClass = "ready", "ready"
	default:
		v.Overall, v.OverallClass = "not ready", "notready"
	}
	return v
}

func newPageRoute(r Route, st tokencache.Status, now time.Time) pageRoute {
	p := pageRoute{Name: r.Name, Kind: st.Kind, Upstream: r.Upstream, Via: "forward proxy only", State: st.State,
		Failures: st.ConsecutiveFailures, LastError: st.LastError,
		LastSuccess: since(st.LastSuccess, now), LastAttempt: since(st.LastAttempt, now), Next: until(st.NextExchange, now)}
	if r.Upstream == "" {
		p.Upstream = "-"
	}
	p.UpstreamParts = breakAfter(p.Upstream, "/.-?&")
	if r.Listen != "" {
		p.Via = "reverse proxy on " + r.Listen
	}
	switch {
	case !st.ExpiresAt.IsZero():
		left := st.ExpiresAt.Sub(now)
		p.Expires = moment{At: rfc3339(st.ExpiresAt), Rel: "left", Text: "expired", Soon: left < time.Minute}
		if left > 0 {
			p.Expires.Text = duration(left)
		}
	case st.Ready:
		p.Expires = moment{Text: "never"}
	default:
		p.Expires = moment{Text: "-"}
	}
	p.Credential = newCredentialCell(r.credential(), now)
	p.Edge = newEdgeCell(r.Edge.view())
	return p
}

func newCredentialCell(c credentialView, now time.Time) credentialCell {
	if c.CredentialExpiresAt.IsZero() {
		return credentialCell{}
	}
	source := credentialSources[c.CredentialExpirySource]
	if source == "" {
		source = c.CredentialExpirySource
	}
	cell := credentialCell{Known: true, Title: rfc3339(c.CredentialExpiresAt) + " (" + source + ")"}
	left := c.CredentialExpiresAt.Sub(now)
	days := int(left / (24 * time.Hour))
	switch {
	case left <= 0:
		cell.Text, cell.Class = "expired", "expired"
	case days == 1:
		cell.Text = "1 day"
	case days > 1:
		cell.Text = fmt.Sprintf("%d days", days)
	default:
		cell.Text = duration(left)
	}
	if left > 0 && left < 7*24*time.Hour {
		cell.Class = "soon"
	}
	return cell
}

// since shows t as a time ago; "never" when zero.
func since(t, now time.Time) moment {
	if t.IsZero() {
		return moment{Text: "never"}
	}
	return moment{At: rfc3339(t), Rel: "ago", Text: duration(now.Sub(t)) + " ago"}
}

// until shows t as a time to come ("due" once past); "-" when zero.
func until(t, now time.Time) moment {
	if t.IsZero() {
		return moment{Text: "-"}
	}
	m := moment{At: rfc3339(t), Rel: "in", Text: "due"}
	if d := t.Sub(now); d >= time.Second {
		m.Text = "in " + duration(d)
	}
	return m
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// duration is d as the page shows it, as status.js's duration does:
// "3d 04h 05m", "2h 03m 04s", "5m 06s", "7s".
func duration(d time.Duration) string {
	sec := max(0, int64(d/time.Second))
	days, h, m, s := sec/86400, sec%86400/3600, sec%3600/60, sec%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %02dh %02dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh %02dm %02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm %02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// breakAfter cuts s after each byte of seps.
func breakAfter(s, seps string) []string {
	var parts []string
	for len(s) > 0 {
		i := strings.IndexAny(s, seps)
		if i < 0 {
			break
		}
		parts, s = append(parts, s[:i+1]), s[i+1:]
	}
	if s != "" {
		parts = append(parts, s)
	}
	return parts
}
