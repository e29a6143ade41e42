package config

import (
	"errors"
	"fmt"
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

// TestContradictionWarnings: settings that contradict each other without
// making the configuration unusable are warned about (at start and in
// check), naming the variables.
func TestContradictionWarnings(t *testing.T) {
	const realmWarning = "route default: CREDPROXY_SPLUNK_REALM=us1 contradicts CREDPROXY_UPSTREAM https://api.eu0.signalfx.com (realm eu0): " +
		"the session is made at UPSTREAM and SPLUNK_REALM is not used; unset UPSTREAM (it defaults to the realm's API) or correct SPLUNK_REALM"
	const openWarning = "CREDPROXY_TOKEN_API=true and route %s has no %sLOCAL_CLIENT_SECRET_FILE (or %sLOCAL_CLIENT_SECRET): " +
		"POST /oauth2/token hands its token to any client that reaches the admin listener, with any secret or none"
	tcs := []struct {
		desc string
		env  map[string]string
		want []string
	}{
		{desc: "realm and upstream agree", env: with(splunkEnv, "CREDPROXY_UPSTREAM", "https://api.us1.signalfx.com/")},
		{desc: "realm us0 is api.signalfx.com", env: with(splunkEnv, "CREDPROXY_SPLUNK_REALM", "us0", "CREDPROXY_UPSTREAM", "https://api.signalfx.com")},
		{desc: "upstream of no known realm", env: with(splunkEnv, "CREDPROXY_UPSTREAM", "https://splunk-proxy.example.com")},
		{desc: "realm contradicts upstream", env: with(splunkEnv, "CREDPROXY_UPSTREAM", "https://API.eu0.signalfx.com"),
			want: []string{realmWarning}},
		{desc: "realm contradicts a splunkcloud upstream", env: with(splunkEnv, "CREDPROXY_UPSTREAM", "https://api.eu1.observability.splunkcloud.com"),
			want: []string{"route default: CREDPROXY_SPLUNK_REALM=us1 contradicts CREDPROXY_UPSTREAM https://api.eu1.observability.splunkcloud.com (realm eu1): " +
				"the session is made at UPSTREAM and SPLUNK_REALM is not used; unset UPSTREAM (it defaults to the realm's API) or correct SPLUNK_REALM"}},
		{desc: "token API without a local client secret", env: with(apiTokenEnv, "CREDPROXY_TOKEN_API", "true"),
			want: []string{fmt.Sprintf(openWarning, "default", "CREDPROXY_", "CREDPROXY_")}},
		{desc: "token API, one route of two without a local client secret", env: map[string]string{
			"CREDPROXY_ROUTES": "a,b", "CREDPROXY_TOKEN_API": "true",
			"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN_FILE": "/run/a", "CREDPROXY_A_UPSTREAM": "https://a.example", "CREDPROXY_A_LISTEN": "127.0.0.1:8080",
			"CREDPROXY_A_LOCAL_CLIENT_SECRET_FILE": "/run/local-a",
			"CREDPROXY_B_AUTH":                     "static", "CREDPROXY_B_TOKEN_FILE": "/run/b", "CREDPROXY_B_UPSTREAM": "https://b.example", "CREDPROXY_B_LISTEN": "127.0.0.1:8081"},
			want: []string{fmt.Sprintf(openWarning, "b", "CREDPROXY_B_", "CREDPROXY_B_")}},
		{desc: "token API off: no local client secret needed", env: apiTokenEnv},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
