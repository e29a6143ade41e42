// Command credproxy is a credential-exchange sidecar proxy: it holds a
// long-lived secret, exchanges it for short-lived access tokens, renews
// them ahead of expiry and injects them into an app's outbound API calls.
//
// Run `credproxy --help` for the commands and environment variables.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default disposition so that a
	// second one ends the process at once instead of waiting for the drain.
	go func() { <-ctx.Done(); stop() }()
	env := environ()
	tuneGC(env)
	os.Exit(exitCode(run(ctx, os.Args[1:], env, os.Stdout, os.Stderr)))
}
