package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/credproxy/credproxy/internal/cabundle"
)

// caBundleUsage is ca bundle's usage line.
const caBundleUsage = "usage: credproxy ca bundle [--from URL] OUT"

// caBundle is `credproxy ca bundle [--from URL] OUT` (internal/cabundle).
func caBundle(ctx context.Context, args []string, env map[string]string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ca bundle", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	from := fs.String("from", "", "a running credproxy's admin URL, whose /ca.pem is fetched")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return &usageError{caBundleUsage}
	}
	w, err := cabundle.Write(ctx, fs.Arg(0), *from, env)
	if err != nil {
		return fmt.Errorf("ca bundle: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: the roots of %s and credproxy's CA from %s (SHA-256 %X)\n", fs.Arg(0), w.RootsFrom, w.CAFrom, w.CASHA256)
	return nil
}
