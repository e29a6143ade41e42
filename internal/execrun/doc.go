// Package execrun is `credproxy exec`: it runs one command behind a
// credproxy of its own, for as long as the command runs.
//
// Run builds the configured routes into a server (internal/server) with
// a forward proxy on an ephemeral loopback port and nothing else (no
// admin, reverse or configured forward listener, no token sink: those
// belong to a credproxy service whose environment exec may share), an
// ephemeral CA that lives CALifetime, and a guard that lets only exec's
// own user, or the holder of a key made for this run, use the proxy
// (execGuard). Once every route holds a token it writes the CA files the
// command trusts, starts the command with the proxy and CA variables set
// and credproxy's secrets taken out of its environment, relays signals to
// it (internal/jobcontrol), and after it exits shuts the server down
// along its one path and returns the command's exit code as *ExitError.
//
// The terminal job control is a package of its own (internal/jobcontrol
// says why); what a signal before the command started means, 128+signal,
// is exec's and decided here. cmd/credproxy parses exec's arguments and
// maps *ExitError to the process's exit code.
package execrun
