package demo

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ControlPath is where a Control serves the outage knob.
const ControlPath = "/demo/outage"

// MaxOutage bounds an outage asked of a Control, so that a typo does not
// leave the demo broken for a day.
const MaxOutage = 10 * time.Minute

// Control lets a person trying `credproxy demo` break the fake identity
// service for a while and watch credproxy cope:
//
//	POST   /demo/outage?seconds=N  every token and details request gets
//	                               503 for N seconds (1-600)
//	DELETE /demo/outage            ends the outage now
//
// Both answer JSON {"outage_until": RFC 3339 or null}. Only loopback
// callers are served, and none that sends an Origin header: a web page
// open in the user's browser could otherwise post to it.
type Control struct {
	csp *CSP
	now func() time.Time
}

// NewControl returns the control of csp, on csp's clock.
func NewControl(csp *CSP) *Control { return &Control{csp: csp, now: csp.opts.Now} }

// outageAnswer is the body of every Control answer.
type outageAnswer struct {
	OutageUntil *time.Time `json:"outage_until"`
	Error       string     `json:"error,omitempty"`
}

func (c *Control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() || r.Header.Get("Origin") != "" {
		writeJSON(w, http.StatusForbidden, outageAnswer{Error: "the demo control answers only local command-line callers"})
		return
	}
	if r.URL.Path != ControlPath {
		writeJSON(w, http.StatusNotFound, outageAnswer{Error: "not found: try POST " + ControlPath + "?seconds=60"})
		return
	}
	switch r.Method {
	case http.MethodPost:
		secs, err := strconv.Atoi(r.URL.Query().Get("seconds"))
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > MaxOutage {
			writeJSON(w, http.StatusBadRequest, outageAnswer{Error: fmt.Sprintf("seconds: want a whole number from 1 to %d", int(MaxOutage.Seconds()))})
			return
		}
		until := c.now().Add(time.Duration(secs) * time.Second)
		body, _ := json.Marshal(cspErrorBody{StatusCode: http.StatusServiceUnavailable, Message: "Service Unavailable (demo outage)", RequestID: "demo-outage"})
		f := Fault{Status: http.StatusServiceUnavailable, Body: string(body), Until: until}
		c.csp.SetFault(f)
		c.csp.SetDetailsFault(f)
		until = until.UTC()
		writeJSON(w, http.StatusOK, outageAnswer{OutageUntil: &until})
	case http.MethodDelete:
		c.csp.ClearFault()
		c.csp.ClearDetailsFault()
		writeJSON(w, http.StatusOK, outageAnswer{})
	default:
		w.Header().Set("Allow", "POST, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, outageAnswer{Error: "POST to start an outage, DELETE to end it"})
	}
}
