package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/proxy"
)

// check validates the configuration and does one exchange per route,
// reporting each result without secrets. It fails if any route fails.
func check(ctx context.Context, env map[string]string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(env)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	client := exchange.NewHTTPClient()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tKIND\tRESULT\tDETAIL")
	failed := 0
	for _, rc := range cfg.Routes {
		src, err := newSource(rc, client)
		if err != nil {
			return err
		}
		tok, took, err := fetchOnce(ctx, rc, src)
		if err != nil {
			failed++
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t%v\n", rc.Name, rc.Auth, err)
			continue
		}
		if r, ok := src.(exchange.Releaser); ok {
			// check must not leave a session behind.
			_ = r.Release(ctx, tok)
		}
		detail := "token without expiry"
		if !tok.Expiry.IsZero() {
			detail = fmt.Sprintf("token expires in %s", time.Until(tok.Expiry).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\tok\t%s (%s), exchange took %s\n", rc.Name, rc.Auth, detail, tok.Value.Fingerprint(), took.Round(time.Millisecond))
	}
	tw.Flush()
	if failed > 0 {
		return fmt.Errorf("%d of %d routes failed", failed, len(cfg.Routes))
	}
	return nil
}

// printToken prints one fresh access token for a route.
func printToken(ctx context.Context, env map[string]string, args []string, stdout, _ io.Writer) error {
	cfg, err := config.Load(env)
	if err != nil {
		return err
	}
	var names []string
	for _, rc := range cfg.Routes {
		names = append(names, rc.Name)
	}
	var rc *config.Route
	switch {
	case len(args) == 1:
		for i := range cfg.Routes {
			if cfg.Routes[i].Name == args[0] {
				rc = &cfg.Routes[i]
			}
		}
		if rc == nil {
			return &usageError{fmt.Sprintf("token: no route %q (routes: %s)", args[0], strings.Join(names, ", "))}
		}
	case len(cfg.Routes) == 1:
		rc = &cfg.Routes[0]
	default:
		return &usageError{fmt.Sprintf("token: name a route (routes: %s)", strings.Join(names, ", "))}
	}
	src, err := newSource(*rc, exchange.NewHTTPClient())
	if err != nil {
		return err
	}
	// A session token printed here is the caller's to use: it is not
	// ended, and it lives as long as the service gives it.
	tok, _, err := fetchOnce(ctx, *rc, src)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok.Value.Reveal())
	return err
}

// fetchOnce does one exchange for a route, bounded by its exchange timeout.
func fetchOnce(ctx context.Context, rc config.Route, src exchange.Source) (exchange.Token, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, rc.ExchangeTimeout)
	defer cancel()
	start := time.Now()
	tok, err := src.Fetch(ctx)
	if err != nil {
		return exchange.Token{}, time.Since(start), fmt.Errorf("route %s: %w", rc.Name, err)
	}
	return tok, time.Since(start), nil
}

// caInit writes a new forward-proxy CA into dir: ca.pem, and ca-key.pem
// with mode 0600. An existing key is never overwritten.
func caInit(args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "init" {
		return &usageError{"usage: credproxy ca init DIR"}
	}
	dir := args[1]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	host, _ := os.Hostname()
	ca, err := proxy.NewCA(fmt.Sprintf("credproxy CA %s %s", host, time.Now().UTC().Format("2006-01-02")))
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(dir); err != nil {
		return err
	}
	sum := sha256.Sum256(ca.Certificate().Raw)
	fmt.Fprintf(stdout, "wrote %s (certificate, SHA-256 %X)\nwrote %s (private key, mode 0600: keep it secret)\n",
		filepath.Join(dir, "ca.pem"), sum, filepath.Join(dir, "ca-key.pem"))
	return nil
}
