// Package server builds a running credproxy from a Config and serves it:
// a token cache and a credential-expiry watcher per route, a reverse
// listener per route that has one, the forward proxy and its CA, the
// admin listener (health, metrics, the status page, the token APIs), the
// token sinks, and systemd's notifications.
//
// New builds everything from the configuration and Options, and starts
// nothing: no goroutine, no listener. Whatever the caller chooses beyond
// the configuration (the logger, where SIGHUPs come from, systemd's
// notifier, who is told the bound addresses, exec's caller check and CA
// lifetime) is an Option, given once; nothing is set on a Server after
// New. Serve owns the rest of its life: it binds every listener, serves
// until its context ends or a listener fails, and then shuts down along
// the one path of the contract (docs/design.md, "Command line"):
//
//	ctx ends -> /readyz fails, systemd hears STOPPING=1
//	         -> the route listeners and the forward proxy drain, up to
//	            CREDPROXY_SHUTDOWN_TIMEOUT, then their connections close
//	         -> the caches stop (ending sessions), the sinks are removed
//	         -> the admin listener closes.
//
// The commands of cmd/credproxy are its callers: run and demo serve until
// a signal, exec serves for as long as its command runs.
package server
