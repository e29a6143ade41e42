package identity

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/credproxy/credproxy/config"
)

// load loads env (a full configuration, or a partial one when partial)
// and returns its only route.
func load(t *testing.T, env map[string]string, partial bool) config.Route {
	t.Helper()
	loadFn := config.Load
	if partial {
		loadFn = config.LoadPartial
	}
	cfg, err := loadFn(env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Routes[0]
}

func env(kv ...string) map[string]string {
	m := map[string]string{"CREDPROXY_UPSTREAM": "https://api.example.com"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var apiToken = env("CREDPROXY_AUTH", "csp-api-token", "CREDPROXY_CSP_API_TOKEN", "shorty")

// TestFingerprints: what changes the principal, what changes only the
// identity, and what changes neither.
func TestFingerprints(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("shorty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, err := Of(load(t, apiToken, false))
	if err != nil {
		t.Fatal(err)
	}
	tcs := []struct {
		desc                   string
		env                    map[string]string
		partial                bool
		samePrincipal, sameIDs bool
	}{
		{desc: "the same configuration", env: apiToken, samePrincipal: true, sameIDs: true},
		{desc: "the same secret from a file", env: env("CREDPROXY_AUTH", "csp-api-token", "CREDPROXY_CSP_API_TOKEN_FILE", file),
			samePrincipal: true, sameIDs: true},
		{desc: "another upstream", env: with(apiToken, "CREDPROXY_UPSTREAM", "https://other.example.com"), samePrincipal: true, sameIDs: true},
		{desc: "another API token", env: with(apiToken, "CREDPROXY_CSP_API_TOKEN", "shortz"), samePrincipal: true},
		{desc: "another CSP", env: with(apiToken, "CREDPROXY_CSP_URL", "https://csp.example.com")},
		{desc: "another kind, same secret", env: env("CREDPROXY_AUTH", "static", "CREDPROXY_TOKEN", "shorty")},
		{desc: "no secret", env: env("CREDPROXY_AUTH", "csp-api-token"), partial: true, samePrincipal: true},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := Of(load(t, tc.env, tc.partial))
			if err != nil {
				t.Fatal(err)
			}
			if (got.Principal == base.Principal) != tc.samePrincipal || (got.Identity == base.Identity) != tc.sameIDs {
				t.Errorf("got %+v against %+v: want same principal %v, same identity %v", got, base, tc.samePrincipal, tc.sameIDs)
			}
			if tc.partial && got.Identity != "" {
				t.Errorf("identity %q without a credential", got.Identity)
			}
		})
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestKnownAnswer pins the encoding: a credproxy and a `credproxy token`
// of different versions must compute the same fingerprints, so a change
// here is a change of domain (v2), on purpose. The values were checked
// with Python's hashlib (sha256 over the length-prefixed fields;
// pbkdf2_hmac("sha256", fields, salt=that sha256, 600000, 8)).
func TestKnownAnswer(t *testing.T) {
	got, err := Of(load(t, apiToken, false))
	if err != nil {
		t.Fatal(err)
	}
	want := Fingerprints{Principal: "sha256:992da98f40dee959", Identity: "pbkdf2-sha256:d782e1ebb294f7af"}
	if got != want {
		t.Errorf("Of = %+v, want %+v", got, want)
	}
	format := regexp.MustCompile(`^pbkdf2-sha256:[0-9a-f]{16}$`)
	if !format.MatchString(got.Identity) || strings.Contains(got.Identity, "shorty") {
		t.Errorf("identity %q", got.Identity)
	}
}

// TestMemo: the memo answers what Of does, and follows a secret file
// that changes.
func TestMemo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := load(t, env("CREDPROXY_AUTH", "static", "CREDPROXY_TOKEN_FILE", file), false)
	m := NewMemo(r)
	for _, content := range []string{"first", "second"} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		want, err := Of(r)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if got, err := m.Fingerprints(); err != nil || got != want {
				t.Errorf("%s: memo %+v, %v; want %+v", content, got, err, want)
			}
		}
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Fingerprints(); err == nil || strings.Contains(err.Error(), "second") {
		t.Errorf("a missing secret file: %v", err)
	}
}
