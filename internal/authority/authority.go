// Package authority normalises a URL's host[:port] so that two spellings
// of one destination compare equal. It is shared by proxy, which looks
// hosts up in forward mode, and config, which refuses two routes that
// claim one host: both must agree on what "one host" is.
package authority

import (
	"net"
	"strings"
)

// Normalize returns hostport as lower-case host:port, with the scheme's
// default port made explicit (80 for http, 443 otherwise), IPv6 brackets
// kept by net.JoinHostPort, and a trailing dot removed, so that
// "API.example.com", "api.example.com:443" and "api.example.com." compare
// equal for https. A normalised authority normalises to itself.
func Normalize(scheme, hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if port == "" {
		port = "443"
		if scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}
