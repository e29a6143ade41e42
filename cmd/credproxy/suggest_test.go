package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/credproxy/credproxy/internal/rtpolicy"
)

// TestUnknownCommandSuggestion: a misspelt command is named with the
// nearest real one; a word near none gets no guess.
func TestUnknownCommandSuggestion(t *testing.T) {
	tcs := []struct {
		desc, cmd, want string
	}{
		{desc: "one letter missing", cmd: "chek", want: "credproxy: unknown command \"chek\" (did you mean check? see credproxy --help)\n"},
		{desc: "transposed", cmd: "tokne", want: "credproxy: unknown command \"tokne\" (did you mean token? see credproxy --help)\n"},
		{desc: "version misspelt", cmd: "verison", want: "credproxy: unknown command \"verison\" (did you mean version? see credproxy --help)\n"},
		{desc: "near nothing", cmd: "frobnicate", want: "credproxy: unknown command \"frobnicate\" (see credproxy --help)\n"},
		{desc: "too short to guess", cmd: "x", want: "credproxy: unknown command \"x\" (see credproxy --help)\n"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{tc.cmd}, map[string]string{}, rtpolicy.Applied{}, &stdout, &stderr)
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if got := stderr.String(); got != tc.want {
				t.Errorf("stderr = %q, want %q", got, tc.want)
			}
		})
	}
}
