package validate

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// helperPaths are the lines of deploy/systemd/credproxy-check that name
// the packaged files; the tests point them at files of their own.
var helperPaths = map[string]string{
	"env_file":  unitEnvFile,
	"secrets":   secretsDir,
	"credproxy": unitBinary,
	"unit_copy": credentialPath(""),
}

// helperRun is what the fake credproxy saw: its arguments and its whole
// environment.
type helperRun struct {
	args []string
	env  map[string]string
	code int
	// stderr is the helper's.
	stderr string
}

// runHelper runs the check helper with its packaged paths replaced: the
// environment file envFile, a fake credproxy that records its arguments
// and environment and exits with code.
func runHelper(t *testing.T, envFile string, code int, args ...string) helperRun {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "systemd", "credproxy-check"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	fake := filepath.Join(dir, "credproxy")
	// /proc/$$/environ: the environment as the helper passed it, without
	// what a shell adds to its own.
	fakeSrc := "#!/bin/sh\n{ printf '%s\\n' \"$@\"; echo --; tr '\\0' '\\n' </proc/$$/environ; } >" + record + "\nexit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(fake, []byte(fakeSrc), 0o755); err != nil {
		t.Fatal(err)
	}
	replace := map[string]string{"env_file": envFile, "secrets": "/secrets/here", "credproxy": fake, "unit_copy": helperPaths["unit_copy"]}
	lines := strings.Split(string(src), "\n")
	for name, packaged := range helperPaths {
		n := 0
		for i, l := range lines {
			if l == name+"="+packaged {
				lines[i] = name + "=" + replace[name]
				n++
			}
		}
		if n != 1 {
			t.Fatalf("credproxy-check: the line %s=%s is there %d times, want once", name, packaged, n)
		}
	}
	helper := filepath.Join(dir, "credproxy-check")
	if err := os.WriteFile(helper, []byte(strings.Join(lines, "\n")), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CREDPROXY_LOG_LEVEL=debug", "SSL_CERT_FILE=/not/the/service's"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	run := helperRun{stderr: stderr.String()}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		run.code = xe.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(record)
	if errors.Is(err, os.ErrNotExist) {
		return run
	} else if err != nil {
		t.Fatal(err)
	}
	argPart, envPart, _ := strings.Cut(string(data), "--\n")
	run.args = strings.Fields(argPart)
	run.env = map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(envPart, "\n"), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		run.env[k] = v
	}
	return run
}

// TestCheckHelperPackagedSettings: credproxy-check runs `credproxy check`
// with exactly the packaged environment file's variables, as systemd
// would set them for the unit, each secret read from the file the unit's
// credential is a copy of; nothing of the caller's environment gets in.
func TestCheckHelperPackagedSettings(t *testing.T) {
	envFile, err := filepath.Abs(filepath.Join("..", "systemd", "credproxy.env"))
	if err != nil {
		t.Fatal(err)
	}
	run := runHelper(t, envFile, 0)
	if run.code != 0 || !slices.Equal(run.args, []string{"check"}) {
		t.Fatalf("exit %d, credproxy ran with %q, want exit 0 and [check]; stderr: %s", run.code, run.args, run.stderr)
	}
	want := readEnvFile(t, envFile)
	for k, v := range want {
		if name, ok := strings.CutPrefix(v, credentialPath("")); ok {
			want[k] = "/secrets/here/" + name
		}
	}
	want["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
	if !maps.Equal(run.env, want) {
		t.Errorf("credproxy's environment:\n%q\nwant\n%q", run.env, want)
	}
	if want["CREDPROXY_CSP_API_TOKEN_FILE"] != "/secrets/here/csp-api-token" {
		t.Errorf("the example's secret is read from %s", want["CREDPROXY_CSP_API_TOKEN_FILE"])
	}
}

// TestCheckHelperSyntax: the helper reads an environment file as systemd
// does for the syntax credproxy's documents use (comments, blank lines,
// spaces around, a value in quotes), maps every copy of a secret back to
// its file whatever its variable (every kind), and leaves other values
// alone.
func TestCheckHelperSyntax(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "credproxy.env")
	copyOf := credentialPath("")
	content := strings.Join([]string{
		"# a comment",
		"; another",
		"",
		"CREDPROXY_ROUTES=api,ingest",
		"  CREDPROXY_API_AUTH=splunk-session  ",
		"CREDPROXY_API_SPLUNK_PASSWORD_FILE=" + copyOf + "splunk-password",
		`CREDPROXY_INGEST_TOKEN_FILE="` + copyOf + `splunk-org-token"`,
		"CREDPROXY_INGEST_HEADER_PREFIX=",
		"CREDPROXY_CA_CERT_FILE=/etc/ssl/ours/ca.pem",
		"CREDPROXY_CA_KEY_FILE='" + copyOf + "ca-key.pem'",
		"CREDPROXY_LOG_LEVEL=info # not a comment",
		"CREDPROXY_OTHER_FILE=/run/credentials/other.service/credentials_x",
	}, "\n") // no newline at the end: the last line counts
	if err := os.WriteFile(envFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	run := runHelper(t, envFile, 0)
	want := map[string]string{
		"PATH":                               "/usr/sbin:/usr/bin:/sbin:/bin",
		"CREDPROXY_ROUTES":                   "api,ingest",
		"CREDPROXY_API_AUTH":                 "splunk-session",
		"CREDPROXY_API_SPLUNK_PASSWORD_FILE": "/secrets/here/splunk-password",
		"CREDPROXY_INGEST_TOKEN_FILE":        "/secrets/here/splunk-org-token",
		"CREDPROXY_INGEST_HEADER_PREFIX":     "",
		"CREDPROXY_CA_CERT_FILE":             "/etc/ssl/ours/ca.pem",
		"CREDPROXY_CA_KEY_FILE":              "/secrets/here/ca-key.pem",
		"CREDPROXY_LOG_LEVEL":                "info # not a comment",
		"CREDPROXY_OTHER_FILE":               "/run/credentials/other.service/credentials_x",
	}
	if run.code != 0 || !maps.Equal(run.env, want) {
		t.Errorf("exit %d (stderr %s), credproxy's environment:\n%q\nwant\n%q", run.code, run.stderr, run.env, want)
	}
}

// TestCheckHelperFailures: check's exit code is the helper's (1: a route
// failed, 2: the configuration is wrong), and the helper's own mistakes
// (arguments, an unreadable file, a line it cannot read) are exit 2
// with a message.
func TestCheckHelperFailures(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "credproxy.env")
	if err := os.WriteFile(envFile, []byte("CREDPROXY_AUTH=static\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{1, 2} {
		if run := runHelper(t, envFile, code); run.code != code {
			t.Errorf("credproxy check exited %d, the helper %d", code, run.code)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.env")
	if err := os.WriteFile(bad, []byte("CREDPROXY_AUTH=static\nexport X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, envFile string
		args          []string
		want          string
	}{
		{desc: "arguments", envFile: envFile, args: []string{"run"}, want: "usage: credproxy-check"},
		{desc: "no environment file", envFile: "/nonexistent/credproxy.env", want: "cannot read /nonexistent/credproxy.env"},
		{desc: "a line not VAR=value", envFile: bad, want: "line 2: not VAR=value"},
	} {
		run := runHelper(t, tc.envFile, 0, tc.args...)
		if run.code != 2 || run.args != nil || !strings.Contains(run.stderr, tc.want) {
			t.Errorf("%s: exit %d, credproxy ran with %q, stderr %q; want exit 2, no run, %q", tc.desc, run.code, run.args, run.stderr, tc.want)
		}
	}
}
