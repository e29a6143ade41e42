package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTypoHintsComeFirst: a misspelt variable is named, with the nearest
// real one, before the problems it may have caused, not only when the
// rest of the configuration is valid.
func TestTypoHintsComeFirst(t *testing.T) {
	const hint = "CREDPROXY_CLIENT_SECERT_FILE is not a credproxy variable and is ignored (did you mean CREDPROXY_CLIENT_SECRET_FILE?)"
	tcs := []struct {
		desc string
		env  map[string]string
		want []string // Error() lines, in order
	}{
		{desc: "misspelt secret file, the rest incomplete", env: map[string]string{
			"CREDPROXY_AUTH": "oauth2-client-credentials", "CREDPROXY_CLIENT_ID": "c",
			"CREDPROXY_CLIENT_SECERT_FILE": "/run/secrets/client",
		}, want: []string{
			hint,
			"CREDPROXY_UPSTREAM: required: the https:// base URL of the API",
			"CREDPROXY_TOKEN_URL: required when CREDPROXY_AUTH=oauth2-client-credentials",
			"CREDPROXY_CLIENT_SECRET: required (or CREDPROXY_CLIENT_SECRET_FILE) when CREDPROXY_AUTH=oauth2-client-credentials",
		}},
		{desc: "several unknown variables, sorted, values never shown", env: map[string]string{
			"CREDPROXY_AUTH": "csp-oauth-app", "CREDPROXY_UPSTREAM": "https://a.example", "CREDPROXY_CSP_CLIENT_ID": "id",
			"CREDPROXY_CSP_CLIENT_SECERT": sentinel, "CREDPROXY_FROBNICATE": sentinel,
		}, want: []string{
			"CREDPROXY_CSP_CLIENT_SECERT is not a credproxy variable and is ignored (did you mean CREDPROXY_CSP_CLIENT_SECRET?)",
			"CREDPROXY_FROBNICATE is not a credproxy variable and is ignored",
			"CREDPROXY_CSP_CLIENT_SECRET: required (or CREDPROXY_CSP_CLIENT_SECRET_FILE) when CREDPROXY_AUTH=csp-oauth-app",
		}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Load(tc.env)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if diff := cmp.Diff(strings.Join(tc.want, "\n"), err.Error()); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error leaks a value:\n%s", err)
			}
		})
	}
}
