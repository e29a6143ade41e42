package secret

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLooksLikePath: the rule that decides whether a *_FILE value may be
// shown in an error.
func TestLooksLikePath(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"/etc/credproxy/csp-api-token", true},
		{"./secrets/token", true},
		{"~/creds/client-secret.txt", true},
		{"/var/run/secrets/kubernetes.io/serviceaccount/token", true},
		{"/etc/credproxy/..2026_01_01_12_00_00.123456789/api-token", true},
		{"/run/secrets/3f8a9b2c1d4e5f6a7b8c9d0e1f2a3b4c", true}, // a hash: one case
		{"secrets/token", true},
		{"token.txt", false},                               // no '/': could be anything
		{"aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE", false},        // a token
		{"eyJhbGciOi.eyJzdWIiOi.SflKxwRJSMeKKF2Q", false},  // a JWT
		{"k3Jd8aQzLw/9XbYp2RtVmN4cHs+e0UqWf=", false},      // base64 with a '/'
		{"/etc/credproxy/aB3dE5gH7jK9mN1pQ3sT5vW7", false}, // a token pasted after a path
		{"/etc/my secret", false},
		{"", false},
	} {
		if got := LooksLikePath(tc.v); got != tc.want {
			t.Errorf("LooksLikePath(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestFileErrorsNameTheVariableNotTheSecret: a secret put into a *_FILE
// variable by mistake appears in no error of Load, which names the
// variable and says why; errors.Is and errors.As still see the cause. A
// value that looks like a path is shown.
func TestFileErrorsNameTheVariableNotTheSecret(t *testing.T) {
	const tok = "Zx9kQ2mR7vT4wY8nB3cF6hJ1pL5sD0gA"
	_, err := Ref{File: tok, Var: "CREDPROXY_CSP_API_TOKEN_FILE"}.Load()
	if err == nil || strings.Contains(err.Error(), tok) || !strings.Contains(err.Error(), "CREDPROXY_CSP_API_TOKEN_FILE") ||
		!strings.Contains(err.Error(), "not shown") {
		t.Errorf("err = %v: want the variable named and its value not shown", err)
	}
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || strings.Contains(pe.Error(), tok) {
		t.Errorf("err = %v: errors.Is(fs.ErrNotExist) and errors.As(*fs.PathError) without the value are wanted", err)
	}

	// Not t.TempDir: the test's CamelCase name with digits after it is a
	// run of the shape of a token.
	dir, err := os.MkdirTemp("", "credproxy-secret-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	missing := filepath.Join(dir, "missing")
	if _, err := (Ref{File: missing, Var: "CREDPROXY_TOKEN_FILE"}).Load(); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v: a path is shown", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Ref{File: empty, Var: "CREDPROXY_TOKEN_FILE"}).Load(); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), empty) {
		t.Errorf("err = %v: an empty file is named", err)
	}
}
