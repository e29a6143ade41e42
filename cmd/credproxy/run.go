package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/suggest"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// usageError is a bad command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitCode maps run's error to the process exit code, in this one place:
// 0 ok, 2 bad usage or configuration, 1 any other failure.
func exitCode(err error) int {
	var ue *usageError
	var ce *config.Error
	var xe *childExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &xe):
		return xe.code
	case errors.As(err, &ue), errors.As(err, &ce):
		return 2
	}
	return 1
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
// only maps them to an exit code.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, env, stdout, stderr)
	var ce *config.Error
	var xe *childExitError
	switch {
	case err == nil, errors.As(err, &xe) && xe.msg == "":
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "credproxy: invalid configuration:\n%s\n", indent(ce.Error()))
	default:
		fmt.Fprintf(stderr, "credproxy: %v\n", err)
	}
	return err
}

func dispatch(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
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
		return runProxy(ctx, env, stderr)
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
