package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/secret"
)

// with returns base plus the given key=value pairs ("" removes a key).
func with(base map[string]string, kv ...string) map[string]string {
	env := map[string]string{}
	for k, v := range base {
		env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00" {
			delete(env, kv[i])
			continue
		}
		env[kv[i]] = kv[i+1]
	}
	return env
}

const unset = "\x00"

var apiTokenEnv = map[string]string{
	"CREDPROXY_AUTH":          "csp-api-token",
	"CREDPROXY_CSP_API_TOKEN": "Zq9-s3cr3t-Xv7-api",
	"CREDPROXY_UPSTREAM":      "https://example.wavefront.com/",
}

func TestLoadValidKinds(t *testing.T) {
	tcs := []struct {
		desc  string
		env   map[string]string
		check func(t *testing.T, r Route)
	}{
		{
			desc: "csp-api-token",
			env:  apiTokenEnv,
			check: func(t *testing.T, r Route) {
				if r.CSPAPIToken != (secret.Ref{Value: "Zq9-s3cr3t-Xv7-api", Var: "CREDPROXY_CSP_API_TOKEN"}) {
					t.Errorf("api token ref = %+v", r.CSPAPIToken)
				}
				if r.Upstream.String() != "https://example.wavefront.com" || r.CSPURL.String() != "https://console.cloud.vmware.com" {
					t.Errorf("urls %v %v", r.Upstream, r.CSPURL)
				}
				if r.Listen != "127.0.0.1:8080" || r.Header != "Authorization" || r.HeaderPrefix != "Bearer" {
					t.Errorf("defaults: %q %q %q", r.Listen, r.Header, r.HeaderPrefix)
				}
				if r.RefreshAt != 0.66 || r.DefaultTTL != 300*time.Second || r.TokenWait != 5*time.Second || r.ExchangeTimeout != 10*time.Second || r.ExpiryMargin != 0 {
					t.Errorf("timing defaults: %+v", r)
				}
			},
		},
		{
			desc: "csp-oauth-app with secret file and org",
			env: map[string]string{
				"CREDPROXY_AUTH": "csp-oauth-app", "CREDPROXY_CSP_CLIENT_ID": "app", "CREDPROXY_CSP_CLIENT_SECRET_FILE": "/run/secret",
				"CREDPROXY_CSP_ORG_ID": "org", "CREDPROXY_UPSTREAM": "https://w.example", "CREDPROXY_CSP_URL": "https://csp.example/prefix/",
			},
			check: func(t *testing.T, r Route) {
				if r.CSPClientSecret != (secret.Ref{File: "/run/secret", Var: "CREDPROXY_CSP_CLIENT_SECRET_FILE"}) || r.CSPOrgID != "org" {
					t.Errorf("secret ref = %+v", r.CSPClientSecret)
				}
				if r.CSPURL.String() != "https://csp.example/prefix" {
					t.Errorf("csp url %v", r.CSPURL)
				}
			},
		},
		{
			desc: "static with custom header and empty prefix",
			env: map[string]string{
				"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": "tok", "CREDPROXY_UPSTREAM": "https://ingest.us1.signalfx.com",
				"CREDPROXY_HEADER": "x-sf-token", "CREDPROXY_HEADER_PREFIX": "", "CREDPROXY_HOSTS": "stream.us1.signalfx.com, API.us1.signalfx.com:443",
			},
			check: func(t *testing.T, r Route) {
				if r.Header != "X-Sf-Token" || r.HeaderPrefix != "" {
					t.Errorf("header %q prefix %q", r.Header, r.HeaderPrefix)
				}
				if diff := cmp.Diff([]string{"stream.us1.signalfx.com", "api.us1.signalfx.com:443"}, r.Hosts); diff != "" {
					t.Errorf("hosts: %s", diff)
				}
			},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Routes) != 1 || cfg.Routes[0].Name != "default" {
				t.Fatalf("routes %+v", cfg.Routes)
			}
			tc.check(t, cfg.Routes[0])
			if cfg.AdminAddr != "127.0.0.1:9901" || cfg.ShutdownTimeout != 15*time.Second || cfg.LogFormat != "json" {
				t.Errorf("global defaults %+v", cfg)
			}
		})
	}
}

func TestLoadSplunkAndOAuth2(t *testing.T) {
	cfg, err := Load(map[string]string{
		"CREDPROXY_ROUTES":                 "splunk,idp,refresh,wi",
		"CREDPROXY_SPLUNK_AUTH":            "splunk-session",
		"CREDPROXY_SPLUNK_SPLUNK_REALM":    "US1",
		"CREDPROXY_SPLUNK_SPLUNK_EMAIL":    "ops@example.com",
		"CREDPROXY_SPLUNK_SPLUNK_PASSWORD": "pw",
		"CREDPROXY_SPLUNK_LISTEN":          "127.0.0.1:8081",
		"CREDPROXY_IDP_AUTH":               "oauth2-client-credentials",
		"CREDPROXY_IDP_TOKEN_URL":          "https://idp.example/oauth2/token",
		"CREDPROXY_IDP_CLIENT_ID":          "c",
		"CREDPROXY_IDP_CLIENT_SECRET_FILE": "/s",
		"CREDPROXY_IDP_SCOPES":             "read:metrics, write:events other",
		"CREDPROXY_IDP_AUTH_STYLE":         "body",
		"CREDPROXY_IDP_UPSTREAM":           "https://api.example",
		"CREDPROXY_IDP_LISTEN":             "127.0.0.1:8082",
		"CREDPROXY_REFRESH_AUTH":           "oauth2-refresh-token",
		"CREDPROXY_REFRESH_TOKEN_URL":      "https://idp.example/oauth2/token",
		"CREDPROXY_REFRESH_REFRESH_TOKEN":  "rt",
		"CREDPROXY_REFRESH_UPSTREAM":       "https://api.example",
		"CREDPROXY_REFRESH_LISTEN":         "127.0.0.1:8083",
		"CREDPROXY_WI_AUTH":                "oauth2-token-exchange",
		"CREDPROXY_WI_TOKEN_URL":           "https://sts.example/token",
		"CREDPROXY_WI_SUBJECT_TOKEN_FILE":  "/var/run/secrets/tokens/credproxy",
		"CREDPROXY_WI_AUDIENCE":            "api.example",
		"CREDPROXY_WI_UPSTREAM":            "https://api.example",
		"CREDPROXY_WI_LISTEN":              "127.0.0.1:8084",
	})
	if err != nil {
		t.Fatal(err)
	}
	sp, idp, rt, wi := cfg.Routes[0], cfg.Routes[1], cfg.Routes[2], cfg.Routes[3]
	if sp.Upstream.String() != "https://api.us1.signalfx.com" || sp.Header != "X-Sf-Token" || sp.HeaderPrefix != "" {
		t.Errorf("splunk defaults: %v %q %q", sp.Upstream, sp.Header, sp.HeaderPrefix)
	}
	if diff := cmp.Diff([]string{"read:metrics", "write:events", "other"}, idp.Scopes); diff != "" || idp.AuthStyle != "body" || idp.ClientSecret.File != "/s" {
		t.Errorf("client credentials: %s %q", diff, idp.AuthStyle)
	}
	if rt.RefreshToken.Value != "rt" || rt.AuthStyle != "basic" {
		t.Errorf("refresh: %+v", rt.RefreshToken)
	}
	if wi.SubjectTokenType != "urn:ietf:params:oauth:token-type:jwt" || wi.Audience != "api.example" {
		t.Errorf("token exchange: %q %q", wi.SubjectTokenType, wi.Audience)
	}

	// No realm: us0.
	cfg, err = Load(map[string]string{"CREDPROXY_AUTH": "splunk-session", "CREDPROXY_SPLUNK_EMAIL": "e", "CREDPROXY_SPLUNK_PASSWORD_FILE": "/p"})
	if err != nil || cfg.Routes[0].Upstream.String() != "https://api.signalfx.com" {
		t.Errorf("no realm: %v %v", cfg, err)
	}
	_, err = Load(map[string]string{"CREDPROXY_AUTH": "oauth2-client-credentials", "CREDPROXY_UPSTREAM": "https://a.example"})
	want := "CREDPROXY_CLIENT_ID: required when CREDPROXY_AUTH=oauth2-client-credentials\n" +
		"CREDPROXY_CLIENT_SECRET: required (or CREDPROXY_CLIENT_SECRET_FILE) when CREDPROXY_AUTH=oauth2-client-credentials\n" +
		"CREDPROXY_TOKEN_URL: required when CREDPROXY_AUTH=oauth2-client-credentials"
	if err == nil || err.Error() != want {
		t.Errorf("oauth2 problems:\n%v\nwant:\n%s", err, want)
	}
}

func TestLoadMultiRoute(t *testing.T) {
	cfg, err := Load(map[string]string{
		"CREDPROXY_ROUTES":                       "wavefront, splunk-org",
		"CREDPROXY_WAVEFRONT_AUTH":               "csp-oauth-app",
		"CREDPROXY_WAVEFRONT_CSP_CLIENT_ID":      "id",
		"CREDPROXY_WAVEFRONT_CSP_CLIENT_SECRET":  "s",
		"CREDPROXY_WAVEFRONT_UPSTREAM":           "https://w.example",
		"CREDPROXY_WAVEFRONT_LISTEN":             "127.0.0.1:8080",
		"CREDPROXY_SPLUNK_ORG_AUTH":              "static",
		"CREDPROXY_SPLUNK_ORG_TOKEN_FILE":        "/t",
		"CREDPROXY_SPLUNK_ORG_UPSTREAM":          "https://ingest.us1.signalfx.com",
		"CREDPROXY_SPLUNK_ORG_LISTEN":            "127.0.0.1:8081",
		"CREDPROXY_SPLUNK_ORG_HEADER":            "X-SF-Token",
		"CREDPROXY_SPLUNK_ORG_HEADER_PREFIX":     "",
		"CREDPROXY_WAVEFRONT_ALLOW_INSECURE_UPS": "typo",
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range cfg.Routes {
		names = append(names, r.Name+"="+r.Prefix+"@"+r.Listen)
	}
	if diff := cmp.Diff([]string{"wavefront=CREDPROXY_WAVEFRONT_@127.0.0.1:8080", "splunk-org=CREDPROXY_SPLUNK_ORG_@127.0.0.1:8081"}, names); diff != "" {
		t.Errorf("routes: %s", diff)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "CREDPROXY_WAVEFRONT_ALLOW_INSECURE_UPS is not a credproxy variable") {
		t.Errorf("warnings %q", cfg.Warnings)
	}
}

func TestLoadProblems(t *testing.T) {
	tcs := []struct {
		desc string
		env  map[string]string
		want []string // "VAR: message" lines, exactly
	}{
		{desc: "no AUTH", env: with(apiTokenEnv, "CREDPROXY_AUTH", unset),
			want: []string{"CREDPROXY_AUTH: required (one of csp-api-token, csp-oauth-app, splunk-session, oauth2-client-credentials, oauth2-refresh-token, oauth2-token-exchange, static)"}},
		{desc: "unknown AUTH", env: with(apiTokenEnv, "CREDPROXY_AUTH", "kerberos"),
			want: []string{`CREDPROXY_AUTH: "kerberos" is not a credential kind (one of csp-api-token, csp-oauth-app, splunk-session, oauth2-client-credentials, oauth2-refresh-token, oauth2-token-exchange, static)`}},
		{desc: "oauth app without secret", env: with(apiTokenEnv, "CREDPROXY_AUTH", "csp-oauth-app", "CREDPROXY_CSP_CLIENT_ID", "id"),
			want: []string{"CREDPROXY_CSP_CLIENT_SECRET: required (or CREDPROXY_CSP_CLIENT_SECRET_FILE) when CREDPROXY_AUTH=csp-oauth-app"}},
		{desc: "secret and file", env: with(apiTokenEnv, "CREDPROXY_CSP_API_TOKEN_FILE", "/x"),
			want: []string{"CREDPROXY_CSP_API_TOKEN_FILE: set either CREDPROXY_CSP_API_TOKEN or CREDPROXY_CSP_API_TOKEN_FILE, not both"}},
		{desc: "plain http upstream", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "http://w.example"),
			want: []string{`CREDPROXY_UPSTREAM: "http://w.example": plain http would expose the credential; use https (or CREDPROXY_ALLOW_INSECURE_UPSTREAM=true in tests)`}},
		{desc: "upstream with query", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://w.example/?a=1"),
			want: []string{`CREDPROXY_UPSTREAM: "https://w.example/?a=1": a base URL has no query or fragment`}},
		{desc: "bad values of every type", env: with(apiTokenEnv, "CREDPROXY_SHUTDOWN_TIMEOUT", "soon", "CREDPROXY_TOKEN_API", "perhaps", "CREDPROXY_REFRESH_AT", "most"),
			want: []string{
				`CREDPROXY_TOKEN_API: "perhaps" is not a boolean (true or false)`,
				`CREDPROXY_SHUTDOWN_TIMEOUT: "soon" is not a duration (e.g. 15s, 2m)`,
				`CREDPROXY_REFRESH_AT: "most" is not a number`,
				`CREDPROXY_REFRESH_AT: 0 is outside 0.1-0.9: the fraction of a token's lifetime after which it is renewed`,
			}},
		{desc: "listen not host:port", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "8080"),
			want: []string{`CREDPROXY_LISTEN: "8080" is not host:port (e.g. 127.0.0.1:8080)`}},
		{desc: "listener collision", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "127.0.0.1:9901"),
			want: []string{"CREDPROXY_LISTEN: 127.0.0.1:9901 is already used by CREDPROXY_ADMIN_ADDR"}},
		{desc: "hop-by-hop header", env: with(apiTokenEnv, "CREDPROXY_HEADER", "Connection"),
			want: []string{`CREDPROXY_HEADER: "Connection" is managed by HTTP itself and cannot carry a credential`}},
		{desc: "short default TTL", env: with(apiTokenEnv, "CREDPROXY_DEFAULT_TTL", "1s"),
			want: []string{"CREDPROXY_DEFAULT_TTL: 1s is too short (at least 10s)"}},
		{desc: "default-route variable with ROUTES", env: with(apiTokenEnv, "CREDPROXY_ROUTES", "a", "CREDPROXY_A_AUTH", "static", "CREDPROXY_A_TOKEN", "t", "CREDPROXY_A_UPSTREAM", "https://a.example", "CREDPROXY_A_LISTEN", "127.0.0.1:1"),
			want: []string{
				"CREDPROXY_AUTH: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_AUTH",
				"CREDPROXY_UPSTREAM: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_UPSTREAM",
				"CREDPROXY_CSP_API_TOKEN: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_CSP_API_TOKEN",
			}},
		{desc: "bad route names", env: map[string]string{"CREDPROXY_ROUTES": "ok,-bad,OK"},
			want: []string{
				"CREDPROXY_OK_AUTH: required (one of csp-api-token, csp-oauth-app, splunk-session, oauth2-client-credentials, oauth2-refresh-token, oauth2-token-exchange, static)",
				"CREDPROXY_OK_UPSTREAM: required: the https:// base URL of the API",
				`CREDPROXY_ROUTES: route name "-bad": use letters, digits, '_' and '-'`,
				`CREDPROXY_ROUTES: routes "ok" and "OK" both use the variables CREDPROXY_OK_*`,
			}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Load(tc.env)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if diff := cmp.Diff(tc.want, strings.Split(ce.Error(), "\n")); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if s := fmt.Sprint(err); strings.Contains(s, "Zq9-s3cr3t") {
				t.Errorf("error leaks the secret: %s", s)
			}
		})
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	cfg, err := Load(apiTokenEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", cfg.Routes[0])} {
		if strings.Contains(s, "Zq9-s3cr3t") {
			t.Fatalf("formatted config leaks the secret: %s", s)
		}
	}
}

func TestWarnings(t *testing.T) {
	cfg, err := Load(with(apiTokenEnv, "CREDPROXY_LISTEN", "0.0.0.0:8080", "CREDPROXY_CSP_API_TOKN", "x"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREDPROXY_LISTEN=0.0.0.0:8080 is not a loopback address: whoever reaches it can use the credential",
		"CREDPROXY_CSP_API_TOKN is not a credproxy variable and is ignored (did you mean CREDPROXY_CSP_API_TOKEN?)",
	}
	if diff := cmp.Diff(want, cfg.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestVariablesDocumented(t *testing.T) {
	for _, v := range Variables() {
		if v.Doc == "" {
			t.Errorf("%s has no doc", v.Name)
		}
	}
}

// FuzzLoad: whatever the environment, Load returns a config or an error,
// never panics, and never puts a secret value into its error.
func FuzzLoad(f *testing.F) {
	f.Add("csp-api-token", "https://w.example", "127.0.0.1:8080", "", "0.66", "15s")
	f.Add("static", "http://[::1]:80/x", "[::1]:0", "a,b", "2", "-1s")
	f.Add("", "%zz", "host", ",,", "NaN", "1e99h")
	f.Fuzz(func(t *testing.T, auth, upstream, listen, routes, refreshAt, timeout string) {
		const sec = "FuzzS3cretValue-77"
		env := map[string]string{
			"CREDPROXY_AUTH": auth, "CREDPROXY_UPSTREAM": upstream, "CREDPROXY_LISTEN": listen,
			"CREDPROXY_ROUTES": routes, "CREDPROXY_REFRESH_AT": refreshAt, "CREDPROXY_SHUTDOWN_TIMEOUT": timeout,
			"CREDPROXY_TOKEN": sec, "CREDPROXY_CSP_API_TOKEN": sec,
		}
		for _, name := range splitList(routes) {
			env[Prefix+strings.ToUpper(name)+"_AUTH"] = auth
		}
		cfg, err := Load(env)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("cfg %v, err %v", cfg, err)
		}
		if err != nil && strings.Contains(err.Error(), sec) {
			t.Fatalf("error leaks the secret: %v", err)
		}
	})
}
