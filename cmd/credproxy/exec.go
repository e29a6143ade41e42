package main

import (
	"context"
	"io"
	"os"

	"github.com/credproxy/credproxy/internal/execrun"
)

// execCommand is `credproxy exec [--] COMMAND [ARGS...]`: its arguments
// parsed here, the rest internal/execrun's. COMMAND's own flags (--help
// included) are COMMAND's; only a first -h or --help is exec's.
func execCommand(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		return usage(stdout, "exec")
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return &usageError{"usage: credproxy exec [--] COMMAND [ARGS...]"}
	}
	return execrun.Run(ctx, execrun.Options{Args: args, Env: env, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
}
