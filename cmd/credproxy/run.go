package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/execrun"
	"github.com/credproxy/credproxy/internal/rtpolicy"
	"github.com/credproxy/credproxy/internal/suggest"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// usageError is a bad command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitCode maps run's error to the process exit code, in this one place:
// 0 ok, 2 bad usage or configuration, exec's command's own code (or
// 128+signal, 126, 127: execrun.ExitError), 1 any other failure.
func exitCode(err error) int {
	var ue *usageError
	var ce *config.Error
	var xe *execrun.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &xe):
		return xe.Code
	case errors.As(err, &ue), errors.As(err, &ce):
		return 2
	}
	return 1
}

// interruptContext is canceled by the first SIGINT or SIGTERM. After it,
// the signals' default disposition is restored, so that a second one ends
// the process at once instead of waiting for the drain.
func interruptContext() context.Context {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	return ctx
}

// catchHangup takes SIGHUP from its default action, which ends the process
// at once, mid-request and without ending Splunk sessions, for as long as
// the run or demo command lasts, its drain included: until stop, each
// SIGHUP is sent on the returned channel (server.Options.Hangup), or
// dropped while one is pending there. exec does not call it: its command
// gets the signal.
func catchHangup() (hangup <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// environ returns the process environment as a map.
func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// run executes one command. Errors are reported on stderr here; the caller
// only maps them to an exit code. policy is what main's rtpolicy.Apply
// set, for the run command's start line.
func run(ctx context.Context, args []string, env map[string]string, policy rtpolicy.Applied, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, env, policy, stdout, stderr)
	var ce *config.Error
	var xe *execrun.ExitError
	switch {
	case err == nil, errors.As(err, &xe) && xe.Msg == "":
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "credproxy: invalid configuration:\n%s\n", indent(ce.Error()))
	default:
		fmt.Fprintf(stderr, "credproxy: %v\n", err)
	}
	return err
}

func dispatch(ctx context.Context, args []string, env map[string]string, policy rtpolicy.Applied, stdout, stderr io.Writer) error {
	cmd, rest := "run", args
	if len(args) > 0 {
		cmd, rest = args[0], args[1:]
	}
	if cmd == "exec" {
		// COMMAND's own flags (--help included) are COMMAND's.
		return execCommand(ctx, rest, env, stdout, stderr)
	}
	for _, a := range rest {
		if a == "-h" || a == "--help" {
			return usage(stdout, cmd)
		}
	}
	switch cmd {
	case "run":
		if err := noArgs(cmd, rest); err != nil {
			return err
		}
		return runProxy(ctx, env, policy, stderr)
	case "check":
		if err := noArgs(cmd, rest); err != nil {
			return err
		}
		return check(ctx, env, stdout, stderr)
	case "token":
		if len(rest) > 1 {
			return &usageError{"token: at most one ROUTE"}
		}
		return printToken(ctx, env, rest, stdout, stderr)
	case "demo":
		if err := noArgs(cmd, rest); err != nil {
			return err
		}
		return runDemo(ctx, env, stdout, stderr)
	case "ca":
		if len(rest) > 0 && rest[0] == "bundle" {
			return caBundle(ctx, rest[1:], env, stdout)
		}
		return caInit(rest, stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		return usage(stdout, "")
	}
	return unknownCommand(cmd)
}

// unknownCommand is the usage error for cmd, naming the command it is
// nearest to: within 2 edits, and fewer than its length, so that a short
// word is not "corrected" into an unrelated one.
func unknownCommand(cmd string) error {
	commands := []string{"run", "check", "token", "ca", "exec", "demo", "version", "help"}
	if s := suggest.Closest(cmd, slices.Values(commands), min(2, len(cmd)-1)); s != "" {
		return &usageError{fmt.Sprintf("unknown command %q (did you mean %s? see credproxy --help)", cmd, s)}
	}
	return &usageError{fmt.Sprintf("unknown command %q (see credproxy --help)", cmd)}
}

func noArgs(cmd string, rest []string) error {
	if len(rest) > 0 {
		return &usageError{fmt.Sprintf("%s takes no arguments, got %q", cmd, rest)}
	}
	return nil
}

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("credproxy %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
