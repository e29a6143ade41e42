package config

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoadPartial: for `credproxy token`, what only an exchange needs
// (the kind, the secret, UPSTREAM, TOKEN_URL, client ID, email) may be
// missing; what is set is still validated.
func TestLoadPartial(t *testing.T) {
	tcs := []struct {
		desc string
		env  map[string]string
		want []string // problems; nil means it loads
	}{
		{desc: "nothing", env: map[string]string{}},
		{desc: "route names only", env: map[string]string{"CREDPROXY_ROUTES": "a,b"}},
		{desc: "a kind without its secret or upstream", env: map[string]string{"CREDPROXY_AUTH": "csp-api-token"}},
		{desc: "oauth2 without token URL, client or secret", env: map[string]string{"CREDPROXY_AUTH": "oauth2-client-credentials"}},
		{desc: "splunk without email or password", env: map[string]string{"CREDPROXY_AUTH": "splunk-session", "CREDPROXY_SPLUNK_REALM": "us1"}},
		{desc: "a bad kind", env: map[string]string{"CREDPROXY_AUTH": "kerberos"},
			want: []string{`CREDPROXY_AUTH: "kerberos" is not a credential kind (one of ` + kindList() + ")"}},
		{desc: "a bad URL", env: map[string]string{"CREDPROXY_AUTH": "csp-api-token", "CREDPROXY_CSP_URL": "http://csp.example"},
			want: []string{`CREDPROXY_CSP_URL: "http://csp.example": plain http would expose the credential; use https (or CREDPROXY_ALLOW_INSECURE_UPSTREAM=true in tests)`}},
		{desc: "both inline and file", env: map[string]string{"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": sentinel, "CREDPROXY_TOKEN_FILE": "/t"},
			want: []string{"CREDPROXY_TOKEN_FILE: set either CREDPROXY_TOKEN or CREDPROXY_TOKEN_FILE, not both"}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := LoadPartial(tc.env)
			var got []string
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					got = append(got, p.Var+": "+p.Msg)
				}
			} else if err != nil || cfg == nil {
				t.Fatalf("cfg %v, err %v", cfg, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if tc.want == nil {
				if _, err := Load(tc.env); err == nil {
					t.Error("Load accepts it too: not a partial configuration")
				}
			}
		})
	}
}
