package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/credproxy/credproxy/bench/fleet"
)

// runFleet is `go run ./bench -fleet`: the fleet simulation alone
// (simulateFleet); then the "Fleet" section of bench/results.md is
// rewritten in place, the rest left as the last full run wrote it.
func runFleet(ctx context.Context, cfg config) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if err := simulateFleet(ctx, root, cfg.fleetRoutes); err != nil {
		return err
	}
	out := filepath.Join(root, "bench")
	rep, err := loadFleet(root)
	if err != nil {
		return err
	}
	if rep == nil {
		return errors.New("fleet simulation wrote no bench/fleet.json")
	}
	md := filepath.Join(out, "results.md")
	doc, err := os.ReadFile(md)
	if err != nil {
		return err
	}
	if err := os.WriteFile(md, []byte(spliceSection(string(doc), "## Fleet", rep.Markdown())), 0o644); err != nil {
		return err
	}
	logf("wrote bench/fleet.json, bench/fleet.svg and the Fleet section of bench/results.md")
	return nil
}

// simulateFleet runs the fleet simulation (package bench/fleet, in virtual
// time, so neither the machine nor its load matters) with routes sidecars:
// its contract tests at that scale, and TestFleetFigures, which writes
// bench/fleet.json and bench/fleet.svg.
func simulateFleet(ctx context.Context, root string, routes int) error {
	logf("fleet: %d sidecars in virtual time (go test ./bench/fleet)", routes)
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-timeout=1h", "-run=^TestFleet", "-v", "./bench/fleet",
		"-args", "-fleet.out="+filepath.Join(root, "bench"), "-fleet.routes="+strconv.Itoa(routes))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fleet simulation: %w", err)
	}
	return nil
}

// loadFleet reads bench/fleet.json, the figures of the last fleet run;
// nil when there is none.
func loadFleet(root string) (*fleet.Report, error) {
	b, err := os.ReadFile(filepath.Join(root, "bench", "fleet.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rep := &fleet.Report{}
	if err := json.Unmarshal(b, rep); err != nil {
		return nil, fmt.Errorf("bench/fleet.json: %w", err)
	}
	return rep, nil
}

// extractSection returns the section of doc that starts with the line
// heading, up to the next "## " heading, ending with a newline; "" when
// there is none.
func extractSection(doc, heading string) string {
	start := strings.Index(doc, "\n"+heading+"\n")
	if start < 0 {
		return ""
	}
	start++
	rest := doc[start:]
	if next := strings.Index(rest[len(heading):], "\n## "); next >= 0 {
		rest = rest[:len(heading)+next+1]
	}
	return strings.TrimRight(rest, "\n") + "\n"
}

// spliceSection replaces the section of doc that starts with the line
// heading (up to the next "## " heading) with section, which starts with
// that heading and ends with a newline. Without such a section, section
// goes before "## Versions", or at the end.
func spliceSection(doc, heading, section string) string {
	start := strings.Index(doc, "\n"+heading+"\n")
	if start < 0 {
		if at := strings.Index(doc, "\n## Versions\n"); at >= 0 {
			return doc[:at+1] + section + "\n" + doc[at+1:]
		}
		return doc + "\n" + section
	}
	start++
	next := strings.Index(doc[start+len(heading):], "\n## ")
	if next < 0 {
		return doc[:start] + section
	}
	return doc[:start] + section + "\n" + doc[start+len(heading)+next+1:]
}
