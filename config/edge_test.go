package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/internal/logtest"
)

// Client keys used in keys files; none may show in a message.
const (
	keyCI    = "Kq7vW2xPz9mLr4Tn"
	keyBare  = "Hs3dF8gJ1kZx6CvB"
	keyShort = "Yt5Wq2Er"
)

// keysFile writes content to a file in a fresh directory and returns its
// path.
func keysFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadEdge: the least-privilege variables, as loaded.
func TestLoadEdge(t *testing.T) {
	good := keysFile(t, "# CI\nci:"+keyCI+"\n\n"+keyBare+"\n")
	tcs := []struct {
		desc  string
		env   map[string]string
		check func(t *testing.T, cfg *Config)
		warn  []string
	}{
		{desc: "defaults", env: apiTokenEnv, check: func(t *testing.T, cfg *Config) {
			r := cfg.Routes[0]
			if r.ListenMode != 0o660 || r.ClientKeysFile != "" || r.Allow != nil || r.AllowUIDs != nil || r.AllowGIDs != nil {
				t.Errorf("route %+v, want mode 0660 and no rule", r)
			}
			if cfg.ForwardKeysFile != "" || cfg.AuditLog != (edge.AuditTarget{Kind: edge.AuditOff}) {
				t.Errorf("forward keys %q, audit %+v", cfg.ForwardKeysFile, cfg.AuditLog)
			}
		}},
		{desc: "client keys", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", " "+good+" "), check: func(t *testing.T, cfg *Config) {
			if got := cfg.Routes[0].ClientKeysFile; got != good {
				t.Errorf("ClientKeysFile = %q, want %q", got, good)
			}
		}},
		{desc: "forward keys", env: with(apiTokenEnv, "CREDPROXY_FORWARD_ADDR", "127.0.0.1:3128", "CREDPROXY_FORWARD_KEYS_FILE", good),
			check: func(t *testing.T, cfg *Config) {
				if cfg.ForwardKeysFile != good {
					t.Errorf("ForwardKeysFile = %q, want %q", cfg.ForwardKeysFile, good)
				}
			}},
		{desc: "forward keys without the forward proxy", env: with(apiTokenEnv, "CREDPROXY_FORWARD_KEYS_FILE", good),
			warn: []string{"CREDPROXY_FORWARD_KEYS_FILE has no effect without CREDPROXY_FORWARD_ADDR"}},
		{desc: "policy", env: with(apiTokenEnv, "CREDPROXY_ALLOW", "GET /v2/**, POST /v2/datapoint,* /api/v2/source/*"),
			check: func(t *testing.T, cfg *Config) {
				p := cfg.Routes[0].Allow
				for _, c := range []struct {
					method, path string
					want         bool
				}{{"GET", "/v2/x/y", true}, {"POST", "/v2/datapoint", true}, {"DELETE", "/api/v2/source/a", true}, {"POST", "/v2/x", false}} {
					if got := p.Match(c.method, c.path); got != c.want {
						t.Errorf("Match(%s %s) = %v, want %v", c.method, c.path, got, c.want)
					}
				}
			}},
		{desc: "unix listener with peers and mode", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "unix:/run/credproxy/api.sock",
			"CREDPROXY_LISTEN_MODE", " 0600 ", "CREDPROXY_ALLOW_UIDS", "0, 1000,root", "CREDPROXY_ALLOW_GIDS", "daemon,20"),
			check: func(t *testing.T, cfg *Config) {
				r := cfg.Routes[0]
				if r.Listen != "unix:/run/credproxy/api.sock" || r.ListenMode != 0o600 {
					t.Errorf("listen %q mode %04o", r.Listen, uint32(r.ListenMode))
				}
				if diff := cmp.Diff([]int{0, 1000, 0}, r.AllowUIDs); diff != "" {
					t.Errorf("AllowUIDs (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]int{1, 20}, r.AllowGIDs); diff != "" {
					t.Errorf("AllowGIDs (-want +got):\n%s", diff)
				}
			}},
		{desc: "unix admin and forward listeners are not off loopback", env: with(apiTokenEnv, "CREDPROXY_TOKEN_API", "true",
			"CREDPROXY_LOCAL_CLIENT_SECRET_FILE", "/run/local",
			"CREDPROXY_ADMIN_ADDR", "unix:/run/credproxy/admin.sock", "CREDPROXY_FORWARD_ADDR", "unix:/run/credproxy/forward.sock"),
			check: func(t *testing.T, cfg *Config) {
				if cfg.AdminAddr != "unix:/run/credproxy/admin.sock" || cfg.ForwardAddr != "unix:/run/credproxy/forward.sock" {
					t.Errorf("admin %q forward %q", cfg.AdminAddr, cfg.ForwardAddr)
				}
			}},
		{desc: "socket mode without a unix listener", env: with(apiTokenEnv, "CREDPROXY_LISTEN_MODE", "0600"),
			warn: []string{"CREDPROXY_LISTEN_MODE has no effect without a unix socket in CREDPROXY_LISTEN (unix:/path.sock)"}},
		{desc: "socket every local user may connect to", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "unix:/run/api.sock", "CREDPROXY_LISTEN_MODE", "666"),
			warn: []string{"CREDPROXY_LISTEN_MODE=0666 lets every local user connect to route default's socket /run/api.sock and spend its credential " +
				"(set CREDPROXY_ALLOW_UIDS, CREDPROXY_ALLOW_GIDS or CREDPROXY_CLIENT_KEYS_FILE, or a mode such as 0660)"}},
		{desc: "a socket every local user may connect to, callers checked", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "unix:/run/api.sock",
			"CREDPROXY_LISTEN_MODE", "0666", "CREDPROXY_ALLOW_GIDS", "20")},
		{desc: "audit to stdout", env: with(apiTokenEnv, "CREDPROXY_AUDIT_LOG", "stdout"), check: func(t *testing.T, cfg *Config) {
			if cfg.AuditLog != (edge.AuditTarget{Kind: edge.AuditStdout}) {
				t.Errorf("AuditLog = %+v", cfg.AuditLog)
			}
		}},
		{desc: "audit to a file", env: with(apiTokenEnv, "CREDPROXY_AUDIT_LOG", " /var/log/credproxy//audit.log "), check: func(t *testing.T, cfg *Config) {
			if cfg.AuditLog != (edge.AuditTarget{Kind: edge.AuditFile, Path: "/var/log/credproxy/audit.log"}) {
				t.Errorf("AuditLog = %+v", cfg.AuditLog)
			}
		}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
			if diff := cmp.Diff(tc.warn, cfg.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			logtest.AssertNoSecrets(t, "formatted config", fmt.Sprintf("%+v", cfg), keyCI, keyBare)
		})
	}
}

// TestLoadEdgeProblems: each bad form of the least-privilege variables is
// refused with the exact message naming the variable (and, for a keys
// file, the file and line); no message holds a key.
func TestLoadEdgeProblems(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	empty := keysFile(t, "# no keys yet\n\n")
	short := keysFile(t, "ci:"+keyCI+"\nold:"+keyShort+"\n")
	dupName := keysFile(t, "ci:"+keyCI+"\nci:"+keyBare+"\n")
	dupKey := keysFile(t, "a:"+keyCI+"\nb:"+keyCI+"\n")
	badName := keysFile(t, keyBare+"\nci/"+keyCI[:4]+":"+keyCI+"\n")
	unix := with(apiTokenEnv, "CREDPROXY_LISTEN", "unix:/run/api.sock")
	tcs := []struct {
		desc string
		env  map[string]string
		want []string
	}{
		{desc: "keys file missing", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", missing),
			want: []string{"CREDPROXY_CLIENT_KEYS_FILE: read keys file: open " + missing + ": no such file or directory"}},
		{desc: "keys file is a directory", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", dir),
			want: []string{"CREDPROXY_CLIENT_KEYS_FILE: read keys file " + dir + ": read " + dir + ": is a directory"}},
		{desc: "keys file empty", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", empty),
			want: []string{"CREDPROXY_CLIENT_KEYS_FILE: keys file " + empty + " holds no keys"}},
		{desc: "key too short", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", short),
			want: []string{"CREDPROXY_CLIENT_KEYS_FILE: keys file " + short + " line 2: the key is shorter than 16 bytes"}},
		{desc: "duplicate name", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", dupName),
			want: []string{`CREDPROXY_CLIENT_KEYS_FILE: keys file ` + dupName + ` line 2: the name "ci" is also on line 1`}},
		{desc: "duplicate key", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", dupKey),
			want: []string{"CREDPROXY_CLIENT_KEYS_FILE: keys file " + dupKey + " line 2: the same key as on line 1"}},
		{desc: "bad name, a piece of a key", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", badName),
			want: []string{"CREDPROXY_CLIENT_KEYS_FILE: keys file " + badName + " line 2: the name before ':' must be 1 to 64 of A-Z a-z 0-9 . _ - (a key that holds ':' needs a name)"}},
		{desc: "forward keys file", env: with(apiTokenEnv, "CREDPROXY_FORWARD_ADDR", "127.0.0.1:3128", "CREDPROXY_FORWARD_KEYS_FILE", short),
			want: []string{"CREDPROXY_FORWARD_KEYS_FILE: keys file " + short + " line 2: the key is shorter than 16 bytes"}},
		{desc: "policy: lower-case method", env: with(apiTokenEnv, "CREDPROXY_ALLOW", "GET /v2/**, get /v2/x"),
			want: []string{`CREDPROXY_ALLOW: rule "get /v2/x": method "get" is not upper-case (methods are case-sensitive; write GET)`}},
		{desc: "policy: a rule that cannot match", env: with(apiTokenEnv, "CREDPROXY_ALLOW", `GET /a\b`),
			want: []string{`CREDPROXY_ALLOW: rule "GET /a\\b": a path with a backslash can never match (such paths are denied)`}},
		{desc: "policy: empty rule", env: with(apiTokenEnv, "CREDPROXY_ALLOW", "GET /v2/**,,POST /v2/x"),
			want: []string{"CREDPROXY_ALLOW: rule 2 is empty (a comma too many?)"}},
		{desc: "uids: unknown user", env: with(unix, "CREDPROXY_ALLOW_UIDS", "0,no-such-user-x"),
			want: []string{`CREDPROXY_ALLOW_UIDS: "no-such-user-x": no such user (nor a number)`}},
		{desc: "gids: out of range", env: with(unix, "CREDPROXY_ALLOW_GIDS", "4294967295"),
			want: []string{`CREDPROXY_ALLOW_GIDS: "4294967295": not a group id (0 to 4294967294)`}},
		{desc: "uids on a TCP listener", env: with(apiTokenEnv, "CREDPROXY_ALLOW_UIDS", "0", "CREDPROXY_ALLOW_GIDS", "0"),
			want: []string{
				"CREDPROXY_ALLOW_UIDS: needs a unix socket in CREDPROXY_LISTEN (unix:/path.sock): a caller on TCP (CREDPROXY_LISTEN=127.0.0.1:8080) has no identity the kernel vouches for, so every one would be refused",
				"CREDPROXY_ALLOW_GIDS: needs a unix socket in CREDPROXY_LISTEN (unix:/path.sock): a caller on TCP (CREDPROXY_LISTEN=127.0.0.1:8080) has no identity the kernel vouches for, so every one would be refused",
			}},
		{desc: "gids on a route without a listener", env: map[string]string{
			"CREDPROXY_ROUTES": "a", "CREDPROXY_FORWARD_ADDR": "127.0.0.1:3128",
			"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN_FILE": "/t", "CREDPROXY_A_UPSTREAM": "https://a.example", "CREDPROXY_A_ALLOW_GIDS": "0"},
			want: []string{"CREDPROXY_A_ALLOW_GIDS: needs a unix socket in CREDPROXY_A_LISTEN (unix:/path.sock): CREDPROXY_A_LISTEN is unset"}},
		{desc: "socket mode", env: with(unix, "CREDPROXY_LISTEN_MODE", "0999"),
			want: []string{`CREDPROXY_LISTEN_MODE: "0999" is not a socket mode: octal permission bits from 1 to 0777, such as 0660`}},
		{desc: "socket mode zero", env: with(unix, "CREDPROXY_LISTEN_MODE", "0"),
			want: []string{`CREDPROXY_LISTEN_MODE: "0" is not a socket mode: octal permission bits from 1 to 0777, such as 0660`}},
		{desc: "relative unix socket", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "unix:api.sock"),
			want: []string{`CREDPROXY_LISTEN: "unix:api.sock": a unix socket address is unix: and an absolute path (e.g. unix:/run/credproxy/api.sock)`}},
		{desc: "unix socket path too long", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "unix:/"+strings.Repeat("s", 107)),
			want: []string{`CREDPROXY_LISTEN: "unix:/` + strings.Repeat("s", 107) + `": the path is longer than 107 bytes, the most a unix socket path may hold`}},
		{desc: "two listeners on one socket", env: with(unix, "CREDPROXY_ADMIN_ADDR", "unix:/run//api.sock"),
			want: []string{"CREDPROXY_LISTEN: unix:/run/api.sock is already used by CREDPROXY_ADMIN_ADDR"}},
		{desc: "audit log: relative path", env: with(apiTokenEnv, "CREDPROXY_AUDIT_LOG", "audit.log"),
			want: []string{`CREDPROXY_AUDIT_LOG: "audit.log" is not off, stdout or an absolute file path`}},
		{desc: "audit log: a directory", env: with(apiTokenEnv, "CREDPROXY_AUDIT_LOG", "/var/log/"),
			want: []string{`CREDPROXY_AUDIT_LOG: "/var/log/" is not off, stdout or an absolute file path`}},
		{desc: "audit log into a secret file", env: with(apiTokenEnv, "CREDPROXY_CSP_API_TOKEN", unset, "CREDPROXY_CSP_API_TOKEN_FILE", "/run/secrets/token",
			"CREDPROXY_AUDIT_LOG", "/run/secrets/token"),
			want: []string{"CREDPROXY_AUDIT_LOG: /run/secrets/token is also CREDPROXY_CSP_API_TOKEN_FILE: credproxy would append audit lines to it"}},
		{desc: "token sink onto the audit log", env: with(apiTokenEnv, "CREDPROXY_AUDIT_LOG", "/var/log/audit.log", "CREDPROXY_TOKEN_SINK_FILE", "/var/log/audit.log"),
			want: []string{"CREDPROXY_TOKEN_SINK_FILE: /var/log/audit.log is also CREDPROXY_AUDIT_LOG: credproxy would overwrite it with the token"}},
		{desc: "token sink onto a keys file", env: with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", short, "CREDPROXY_TOKEN_SINK_FILE", short),
			want: []string{
				"CREDPROXY_CLIENT_KEYS_FILE: keys file " + short + " line 2: the key is shorter than 16 bytes",
				"CREDPROXY_TOKEN_SINK_FILE: " + short + " is also CREDPROXY_CLIENT_KEYS_FILE: credproxy would overwrite it with the token",
			}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Load(tc.env)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %+v, %v; want *Error", cfg, err)
			}
			var got []string
			for _, p := range ce.Problems {
				got = append(got, p.Var+": "+p.Msg)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			logtest.AssertNoSecrets(t, "error", err.Error(), keyCI, keyBare, keyShort)
		})
	}
}

// TestLoadPartialSkipsKeysFiles: `credproxy token` does not read keys
// files (it may run as a user who cannot), and does not need them.
func TestLoadPartialSkipsKeysFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := LoadPartial(with(apiTokenEnv, "CREDPROXY_CLIENT_KEYS_FILE", missing, "CREDPROXY_FORWARD_KEYS_FILE", missing)); err != nil {
		t.Errorf("LoadPartial: %v", err)
	}
}

// TestListenModeType: LISTEN_MODE is a file mode of permission bits only.
func TestListenModeType(t *testing.T) {
	cfg, err := Load(with(apiTokenEnv, "CREDPROXY_LISTEN", "unix:/run/a.sock", "CREDPROXY_LISTEN_MODE", "0640"))
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Routes[0].ListenMode; m != fs.FileMode(0o640) || m&^fs.ModePerm != 0 {
		t.Errorf("ListenMode = %v", m)
	}
}
