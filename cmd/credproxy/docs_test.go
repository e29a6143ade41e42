package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// recipe returns the first fenced code block after the line in
// docs/operators/<doc> that starts with marker.
func recipe(t *testing.T, doc, marker string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "operators", doc))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\n"+marker)
	if !ok {
		t.Fatalf("docs/operators/%s has no %q", doc, marker)
	}
	_, block, ok := strings.Cut(after, "\n```")
	if ok {
		_, block, ok = strings.Cut(block, "\n") // past the info string
	}
	if ok {
		block, _, ok = strings.Cut(block, "\n```")
	}
	if !ok {
		t.Fatalf("docs/operators/%s: no fenced code block after %q", doc, marker)
	}
	return block + "\n"
}

// TestDocsPythonRecipe runs docs/operators/vm.md's Python requests script, as the
// page has it, under `credproxy exec` against the fake CSP and API: the
// API sees a valid CSP token, though neither the script nor its
// environment holds one.
func TestDocsPythonRecipe(t *testing.T) {
	const apiToken = "docsPy-3b2a-41c0-beef"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	script := filepath.Join(t.TempDir(), "wavefront_sources.py")
	if err := os.WriteFile(script, []byte(recipe(t, "vm.md", "<!-- recipe: python-requests")), 0o644); err != nil {
		t.Fatal(err)
	}
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	env["WAVEFRONT_URL"] = echoURL
	code, out, errOut := runBinary(t, env, "exec", "--", python(t), script)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// The script prints the API's JSON as a Python dict.
	if !strings.Contains(out, "'authorized': True") || !strings.Contains(out, "'path': '/api/v2/source'") {
		t.Errorf("the script printed %q, want the echo of an authorized /api/v2/source", out)
	}
	tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer ")
	if !csp.Valid(tok) {
		t.Error("the API saw no valid CSP token")
	}
	logtest.AssertNoSecrets(t, "exec output", out+errOut, apiToken, tok)
}
