// Command credproxy is a credential-exchange sidecar proxy: it holds a
// long-lived secret, exchanges it for short-lived access tokens, renews
// them ahead of expiry and injects them into an app's outbound API calls.
//
// Run `credproxy --help` for the commands and environment variables.
package main

import (
	"os"

	"github.com/credproxy/credproxy/internal/rtpolicy"
)

func main() {
	env := environ()
	policy := rtpolicy.Apply(env)
	os.Exit(exitCode(run(interruptContext(), os.Args[1:], env, policy, os.Stdout, os.Stderr)))
}
