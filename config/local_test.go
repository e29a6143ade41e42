package config

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/secret"
)

// TestLoadLocalClients: the local OAuth 2.0 client secret and the token
// sink, as loaded.
func TestLoadLocalClients(t *testing.T) {
	tcs := []struct {
		desc       string
		env        map[string]string
		wantSecret secret.Ref
		wantFile   string
		wantMode   fs.FileMode
		warnings   []string
	}{
		{desc: "neither", env: apiTokenEnv, wantMode: 0o600},
		{desc: "inline secret, sink with the default mode", env: with(apiTokenEnv, "CREDPROXY_TOKEN_API", "true",
			"CREDPROXY_LOCAL_CLIENT_SECRET", " "+sentinel+"-local\n", "CREDPROXY_TOKEN_SINK_FILE", " /run/credproxy//token "),
			wantSecret: secret.Ref{Value: secret.New(sentinel + "-local"), Var: "CREDPROXY_LOCAL_CLIENT_SECRET"},
			wantFile:   "/run/credproxy/token", wantMode: 0o600},
		{desc: "secret file, mode 640", env: with(apiTokenEnv, "CREDPROXY_TOKEN_API", "true",
			"CREDPROXY_LOCAL_CLIENT_SECRET_FILE", "/run/secrets/local", "CREDPROXY_TOKEN_SINK_FILE", "/run/t", "CREDPROXY_TOKEN_SINK_MODE", "640"),
			wantSecret: secret.Ref{File: "/run/secrets/local", Var: "CREDPROXY_LOCAL_CLIENT_SECRET_FILE"},
			wantFile:   "/run/t", wantMode: 0o640},
		{desc: "mode 0o400", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_FILE", "/run/t", "CREDPROXY_TOKEN_SINK_MODE", "0o400"),
			wantFile: "/run/t", wantMode: 0o400},
		{desc: "world-readable mode", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_FILE", "/run/t", "CREDPROXY_TOKEN_SINK_MODE", "0644"),
			wantFile: "/run/t", wantMode: 0o644,
			warnings: []string{"CREDPROXY_TOKEN_SINK_MODE=0644 lets every local user read route default's token from /run/t"}},
		{desc: "mode without a file", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_MODE", "0640"), wantMode: 0o640,
			warnings: []string{"CREDPROXY_TOKEN_SINK_MODE has no effect without CREDPROXY_TOKEN_SINK_FILE"}},
		{desc: "local secret without the token API", env: with(apiTokenEnv, "CREDPROXY_LOCAL_CLIENT_SECRET_FILE", "/s"),
			wantSecret: secret.Ref{File: "/s", Var: "CREDPROXY_LOCAL_CLIENT_SECRET_FILE"}, wantMode: 0o600,
			warnings: []string{"CREDPROXY_LOCAL_CLIENT_SECRET_FILE has no effect without CREDPROXY_TOKEN_API=true"}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			r := cfg.Routes[0]
			if diff := cmp.Diff(tc.wantSecret, r.LocalClientSecret, cmp.Comparer(secret.Secret.Equal)); diff != "" {
				t.Errorf("LocalClientSecret (-want +got):\n%s", diff)
			}
			if r.TokenSinkFile != tc.wantFile || r.TokenSinkMode != tc.wantMode {
				t.Errorf("sink %q %04o, want %q %04o", r.TokenSinkFile, r.TokenSinkMode, tc.wantFile, tc.wantMode)
			}
			if diff := cmp.Diff(tc.warnings, cfg.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadLocalClientProblems: every refused local-client setting names
// its variable; none quotes a secret.
func TestLoadLocalClientProblems(t *testing.T) {
	two := map[string]string{
		"CREDPROXY_ROUTES": "a,b", "CREDPROXY_TOKEN_API": "true",
		"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN_FILE": "/run/secrets/a", "CREDPROXY_A_UPSTREAM": "https://a.example",
		"CREDPROXY_B_AUTH": "static", "CREDPROXY_B_TOKEN": sentinel, "CREDPROXY_B_UPSTREAM": "https://b.example",
	}
	tcs := []struct {
		desc string
		env  map[string]string
		want []string
	}{
		{desc: "mode not octal", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_FILE", "/run/t", "CREDPROXY_TOKEN_SINK_MODE", "0698"),
			want: []string{`CREDPROXY_TOKEN_SINK_MODE: "0698" is not an octal file mode of at most 0777 (e.g. 0600, 0640)`}},
		{desc: "mode too large", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_MODE", "4755"),
			want: []string{`CREDPROXY_TOKEN_SINK_MODE: "4755" is not an octal file mode of at most 0777 (e.g. 0600, 0640)`}},
		{desc: "mode symbolic", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_MODE", "u=rw"),
			want: []string{`CREDPROXY_TOKEN_SINK_MODE: "u=rw" is not an octal file mode of at most 0777 (e.g. 0600, 0640)`}},
		{desc: "mode signed", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_MODE", "+600"),
			want: []string{`CREDPROXY_TOKEN_SINK_MODE: "+600" is not an octal file mode of at most 0777 (e.g. 0600, 0640)`}},
		{desc: "relative sink", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_FILE", "run/token"),
			want: []string{`CREDPROXY_TOKEN_SINK_FILE: "run/token" is not an absolute path`}},
		{desc: "sink names a directory", env: with(apiTokenEnv, "CREDPROXY_TOKEN_SINK_FILE", "/run/credproxy/"),
			want: []string{`CREDPROXY_TOKEN_SINK_FILE: "/run/credproxy/" names a directory; want a file in it, e.g. /run/credproxy/token`}},
		{desc: "sink overwrites the route's own secret", env: with(apiTokenEnv, "CREDPROXY_CSP_API_TOKEN", unset,
			"CREDPROXY_CSP_API_TOKEN_FILE", "/run/secrets/api", "CREDPROXY_TOKEN_SINK_FILE", "/run/secrets/./api"),
			want: []string{"CREDPROXY_TOKEN_SINK_FILE: /run/secrets/api is also CREDPROXY_CSP_API_TOKEN_FILE: credproxy would overwrite it with the token"}},
		{desc: "sink overwrites another route's secret and the CA key", env: with(two,
			"CREDPROXY_FORWARD_ADDR", "127.0.0.1:3128", "CREDPROXY_CA_CERT_FILE", "/ca/ca.pem", "CREDPROXY_CA_KEY_FILE", "/ca/key.pem",
			"CREDPROXY_A_TOKEN_SINK_FILE", "/ca/key.pem", "CREDPROXY_B_TOKEN_SINK_FILE", "/run/secrets/a"),
			want: []string{
				"CREDPROXY_A_TOKEN_SINK_FILE: /ca/key.pem is also CREDPROXY_CA_KEY_FILE: credproxy would overwrite it with the token",
				"CREDPROXY_B_TOKEN_SINK_FILE: /run/secrets/a is also CREDPROXY_A_TOKEN_FILE: credproxy would overwrite it with the token",
			}},
		{desc: "two routes, one sink", env: with(two, "CREDPROXY_FORWARD_ADDR", "127.0.0.1:3128",
			"CREDPROXY_A_TOKEN_SINK_FILE", "/run/t", "CREDPROXY_B_TOKEN_SINK_FILE", "/run//t"),
			want: []string{"CREDPROXY_B_TOKEN_SINK_FILE: /run/t is route a's token sink already; each route needs a file of its own"}},
		{desc: "local secret inline and from a file", env: with(apiTokenEnv, "CREDPROXY_LOCAL_CLIENT_SECRET", sentinel, "CREDPROXY_LOCAL_CLIENT_SECRET_FILE", "/s"),
			want: []string{"CREDPROXY_LOCAL_CLIENT_SECRET_FILE: set either CREDPROXY_LOCAL_CLIENT_SECRET or CREDPROXY_LOCAL_CLIENT_SECRET_FILE, not both"}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Load(tc.env)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want an *Error", err)
			}
			var got []string
			for _, p := range ce.Problems {
				got = append(got, p.Var+": "+p.Msg)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error leaks the secret:\n%s", err)
			}
		})
	}
}

// TestSinkKeepsRouteWithoutListenerUseful: a route whose only consumer is
// its token sink is not warned about as unusable.
func TestSinkKeepsRouteWithoutListenerUseful(t *testing.T) {
	cfg, err := Load(map[string]string{
		"CREDPROXY_ROUTES": "a", "CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN": "t",
		"CREDPROXY_A_UPSTREAM": "https://a.example", "CREDPROXY_A_TOKEN_SINK_FILE": "/run/a-token",
	})
	if err != nil || len(cfg.Warnings) != 0 {
		t.Errorf("Load = %v, warnings %q; want none", err, cfg.Warnings)
	}
}
