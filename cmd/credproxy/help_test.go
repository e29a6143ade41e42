package main

import (
	"strings"
	"testing"

	"github.com/credproxy/credproxy/internal/rtpolicy"
)

// TestHelp: --help opens for a newcomer (the demo, a worked example), every
// command has help of its own, and no line is wider than helpWidth.
func TestHelp(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"--help"}, nil, rtpolicy.Applied{}, &out, &out); err != nil {
		t.Fatal(err)
	}
	general := out.String()
	for _, want := range []string{"New here? Run `credproxy demo`", "credproxy check", "CREDPROXY_ADMIN_ADDR", "CSP_API_TOKEN_FILE"} {
		if !strings.Contains(general, want) {
			t.Errorf("credproxy --help lacks %q", want)
		}
	}
	if first := strings.SplitN(general, "\n", 4); !strings.HasPrefix(first[2], "New here?") {
		t.Errorf("credproxy --help does not open with the demo: %q", first[:3])
	}
	texts := map[string]string{"credproxy --help": general}
	for _, cmd := range []string{"run", "check", "token", "exec", "ca", "demo", "version"} {
		var b strings.Builder
		if err := run(t.Context(), []string{cmd, "--help"}, nil, rtpolicy.Applied{}, &b, &b); err != nil {
			t.Fatalf("%s --help: %v", cmd, err)
		}
		if !strings.HasPrefix(b.String(), "Usage: credproxy "+cmd) && !(cmd == "run" && strings.HasPrefix(b.String(), "Usage: credproxy [run]")) {
			t.Errorf("credproxy %s --help is not its own help:\n%s", cmd, b.String())
		}
		texts["credproxy "+cmd+" --help"] = b.String()
	}
	for what, text := range texts {
		for i, line := range strings.Split(text, "\n") {
			if len([]rune(line)) > helpWidth {
				t.Errorf("%s line %d is %d characters wide (at most %d): %q", what, i+1, len([]rune(line)), helpWidth, line)
			}
		}
	}
}
