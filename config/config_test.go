package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/secret"
)

// sentinel is a credential value that must never show in a message or a
// formatted Config.
const sentinel = "Zq9-s3cr3t-Xv7"

// unset, as a value for with, removes the variable.
const unset = "\x00"

// with returns base plus the given key, value pairs (value unset removes
// the key). base is not modified.
func with(base map[string]string, kv ...string) map[string]string {
	env := map[string]string{}
	for k, v := range base {
		env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == unset {
			delete(env, kv[i])
			continue
		}
		env[kv[i]] = kv[i+1]
	}
	return env
}

var apiTokenEnv = map[string]string{
	"CREDPROXY_AUTH":          "csp-api-token",
	"CREDPROXY_CSP_API_TOKEN": sentinel + "-api",
	"CREDPROXY_UPSTREAM":      "https://example.wavefront.com/",
}

// urlComparer compares URLs by their string form, nil included.
var urlComparer = cmp.Comparer(func(a, b *url.URL) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.String() == b.String()
})

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// defaultRoute is the route Load makes for the default route of the given
// kind before the kind's own variables.
func defaultRoute(kind Kind, upstream string) Route {
	return Route{
		Name: "default", Prefix: "CREDPROXY_", Auth: kind, Upstream: mustURL(upstream),
		Listen: "127.0.0.1:8080", Header: "Authorization", HeaderPrefix: "Bearer",
		AuthStyle: "basic", SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt",
		RefreshAt: 0.66, DefaultTTL: 300 * time.Second, TokenWait: 5 * time.Second, ExchangeTimeout: 10 * time.Second,
		TokenSinkMode: 0o600, ListenMode: 0o660,
	}
}

func TestLoadValidKinds(t *testing.T) {
	tcs := []struct {
		desc string
		env  map[string]string
		want func(r *Route)
	}{
		{
			desc: "csp-api-token",
			env:  apiTokenEnv,
			want: func(r *Route) {
				*r = defaultRoute(KindCSPAPIToken, "https://example.wavefront.com")
				r.CSPURL = mustURL("https://console.cloud.vmware.com")
				r.CSPAPIToken = secret.Ref{Value: secret.New(sentinel + "-api"), Var: "CREDPROXY_CSP_API_TOKEN"}
			},
		},
		{
			desc: "csp-api-token from a file, value with a newline trimmed",
			env: map[string]string{
				"CREDPROXY_AUTH": "CSP-API-Token", "CREDPROXY_CSP_API_TOKEN_FILE": "/run/secrets/token\n",
				"CREDPROXY_UPSTREAM": "https://W.Example:8443/base/path/", "CREDPROXY_CSP_URL": "https://csp.example/prefix/",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindCSPAPIToken, "https://w.example:8443/base/path")
				r.CSPURL = mustURL("https://csp.example/prefix")
				r.CSPAPIToken = secret.Ref{File: "/run/secrets/token", Var: "CREDPROXY_CSP_API_TOKEN_FILE"}
			},
		},
		{
			desc: "csp-oauth-app",
			env: map[string]string{
				"CREDPROXY_AUTH": "csp-oauth-app", "CREDPROXY_CSP_CLIENT_ID": "app", "CREDPROXY_CSP_CLIENT_SECRET_FILE": "/run/secret",
				"CREDPROXY_CSP_ORG_ID": "org", "CREDPROXY_UPSTREAM": "https://w.example",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindCSPOAuthApp, "https://w.example")
				r.CSPURL = mustURL("https://console.cloud.vmware.com")
				r.CSPClientID, r.CSPOrgID = "app", "org"
				r.CSPClientSecret = secret.Ref{File: "/run/secret", Var: "CREDPROXY_CSP_CLIENT_SECRET_FILE"}
			},
		},
		{
			desc: "static with custom header, empty prefix and hosts",
			env: map[string]string{
				"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": sentinel, "CREDPROXY_UPSTREAM": "https://ingest.us1.signalfx.com",
				"CREDPROXY_HEADER": "x-sf-token", "CREDPROXY_HEADER_PREFIX": "",
				"CREDPROXY_HOSTS": "stream.us1.signalfx.com, API.us1.signalfx.com:443,[::1]:8443,10.0.0.1,,",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindStatic, "https://ingest.us1.signalfx.com")
				r.Static = secret.Ref{Value: secret.New(sentinel), Var: "CREDPROXY_TOKEN"}
				r.Header, r.HeaderPrefix = "X-Sf-Token", ""
				r.Hosts = []string{"stream.us1.signalfx.com", "api.us1.signalfx.com:443", "[::1]:8443", "10.0.0.1"}
			},
		},
		{
			desc: "static with timing overrides and an insecure upstream",
			env: map[string]string{
				"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": "t", "CREDPROXY_UPSTREAM": "http://127.0.0.1:9000",
				"CREDPROXY_ALLOW_INSECURE_UPSTREAM": "true", "CREDPROXY_HEADER_PREFIX": "Token  ",
				"CREDPROXY_REFRESH_AT": "0.5", "CREDPROXY_EXPIRY_MARGIN": "30s", "CREDPROXY_DEFAULT_TTL": "1h",
				"CREDPROXY_TOKEN_WAIT": "0s", "CREDPROXY_EXCHANGE_TIMEOUT": "5m",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindStatic, "http://127.0.0.1:9000")
				r.Static = secret.Ref{Value: secret.New("t"), Var: "CREDPROXY_TOKEN"}
				r.AllowInsecureUpstream, r.HeaderPrefix = true, "Token"
				r.RefreshAt, r.ExpiryMargin, r.DefaultTTL, r.TokenWait, r.ExchangeTimeout = 0.5, 30*time.Second, time.Hour, 0, 5*time.Minute
			},
		},
		{
			desc: "splunk-session with realm",
			env: map[string]string{
				"CREDPROXY_AUTH": "splunk-session", "CREDPROXY_SPLUNK_REALM": "US1", "CREDPROXY_SPLUNK_EMAIL": "ops@example.com",
				"CREDPROXY_SPLUNK_PASSWORD": sentinel, "CREDPROXY_SPLUNK_ORG_ID": "o1",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindSplunkSession, "https://api.us1.signalfx.com")
				r.Header, r.HeaderPrefix = "X-Sf-Token", ""
				r.SplunkRealm, r.SplunkEmail, r.SplunkOrgID = "us1", "ops@example.com", "o1"
				r.SplunkPassword = secret.Ref{Value: secret.New(sentinel), Var: "CREDPROXY_SPLUNK_PASSWORD"}
			},
		},
		{
			desc: "splunk-session without realm, Bearer asked for",
			env: map[string]string{
				"CREDPROXY_AUTH": "splunk-session", "CREDPROXY_SPLUNK_EMAIL": "e", "CREDPROXY_SPLUNK_PASSWORD_FILE": "/p",
				"CREDPROXY_HEADER": "authorization", "CREDPROXY_HEADER_PREFIX": "Bearer",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindSplunkSession, "https://api.signalfx.com")
				r.SplunkEmail = "e"
				r.SplunkPassword = secret.Ref{File: "/p", Var: "CREDPROXY_SPLUNK_PASSWORD_FILE"}
			},
		},
		{
			desc: "oauth2-client-credentials",
			env: map[string]string{
				"CREDPROXY_AUTH": "oauth2-client-credentials", "CREDPROXY_TOKEN_URL": "https://idp.example/oauth2/token",
				"CREDPROXY_CLIENT_ID": "c", "CREDPROXY_CLIENT_SECRET": sentinel, "CREDPROXY_SCOPES": "read:metrics, write:events  other",
				"CREDPROXY_AUDIENCE": "api.example", "CREDPROXY_AUTH_STYLE": "Body", "CREDPROXY_UPSTREAM": "https://api.example",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindOAuth2ClientCredential, "https://api.example")
				r.TokenURL = mustURL("https://idp.example/oauth2/token")
				r.ClientID, r.Audience, r.AuthStyle = "c", "api.example", "body"
				r.ClientSecret = secret.Ref{Value: secret.New(sentinel), Var: "CREDPROXY_CLIENT_SECRET"}
				r.Scopes = []string{"read:metrics", "write:events", "other"}
			},
		},
		{
			desc: "oauth2-refresh-token, public client",
			env: map[string]string{
				"CREDPROXY_AUTH": "oauth2-refresh-token", "CREDPROXY_TOKEN_URL": "https://idp.example/token",
				"CREDPROXY_REFRESH_TOKEN_FILE": "/rt", "CREDPROXY_CLIENT_ID": "cli", "CREDPROXY_UPSTREAM": "https://api.example",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindOAuth2RefreshToken, "https://api.example")
				r.TokenURL = mustURL("https://idp.example/token")
				r.ClientID = "cli"
				r.RefreshToken = secret.Ref{File: "/rt", Var: "CREDPROXY_REFRESH_TOKEN_FILE"}
			},
		},
		{
			desc: "credential expiry, with an offset, and in the past",
			env:  with(apiTokenEnv, "CREDPROXY_CREDENTIAL_EXPIRES_AT", " 2020-02-29T23:30:00+02:00\n"),
			want: func(r *Route) {
				*r = defaultRoute(KindCSPAPIToken, "https://example.wavefront.com")
				r.CSPURL = mustURL("https://console.cloud.vmware.com")
				r.CSPAPIToken = secret.Ref{Value: secret.New(sentinel + "-api"), Var: "CREDPROXY_CSP_API_TOKEN"}
				r.CredentialExpiresAt = time.Date(2020, 2, 29, 21, 30, 0, 0, time.UTC)
			},
		},
		{
			desc: "oauth2-token-exchange",
			env: map[string]string{
				"CREDPROXY_AUTH": "oauth2-token-exchange", "CREDPROXY_TOKEN_URL": "https://sts.example/token",
				"CREDPROXY_SUBJECT_TOKEN_FILE": "/var/run/secrets/tokens/credproxy", "CREDPROXY_UPSTREAM": "https://api.example",
				"CREDPROXY_SUBJECT_TOKEN_TYPE": "urn:ietf:params:oauth:token-type:access_token",
			},
			want: func(r *Route) {
				*r = defaultRoute(KindOAuth2TokenExchange, "https://api.example")
				r.TokenURL = mustURL("https://sts.example/token")
				r.SubjectTokenFile = "/var/run/secrets/tokens/credproxy"
				r.SubjectTokenType = "urn:ietf:params:oauth:token-type:access_token"
			},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			var want Route
			tc.want(&want)
			wantCfg := &Config{
				AdminAddr: "127.0.0.1:9901", LogLevel: "info", LogFormat: "json", ShutdownTimeout: 15 * time.Second,
				Routes: []Route{want},
			}
			if diff := cmp.Diff(wantCfg, cfg, urlComparer); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadGlobals(t *testing.T) {
	cfg, err := Load(with(apiTokenEnv,
		"CREDPROXY_ADMIN_ADDR", "0.0.0.0:9902", "CREDPROXY_FORWARD_ADDR", "127.0.0.1:3128",
		"CREDPROXY_CA_CERT_FILE", "/ca/cert.pem", "CREDPROXY_CA_KEY_FILE", "/ca/key.pem",
		"CREDPROXY_FORWARD_DENY_OTHERS", "true", "CREDPROXY_TOKEN_API", "1", "CREDPROXY_LOCAL_CLIENT_SECRET_FILE", "/run/local",
		"CREDPROXY_LOG_LEVEL", "DEBUG", "CREDPROXY_LOG_FORMAT", "console", "CREDPROXY_SHUTDOWN_TIMEOUT", "1m30s",
		"CREDPROXY_ALLOWED_HOSTS", " credproxy.internal, Sidecar.Local. ,",
		"CREDPROXY_ALLOWED_ORIGINS", "https://Grafana.example.com, http://localhost:3000,https://grafana.example.com:443, http://[::1]:80",
	))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Routes = nil
	want := &Config{
		AdminAddr: "0.0.0.0:9902", ForwardAddr: "127.0.0.1:3128", CACertFile: "/ca/cert.pem", CAKeyFile: "/ca/key.pem",
		ForwardDenyOthers: true, TokenAPI: true, LogLevel: "debug", LogFormat: "console", ShutdownTimeout: 90 * time.Second,
		AllowedHosts:   []string{"credproxy.internal", "sidecar.local"},
		AllowedOrigins: []string{"https://grafana.example.com", "http://localhost:3000", "http://[::1]"},
		Warnings:       []string{"CREDPROXY_ADMIN_ADDR=0.0.0.0:9902 is not a loopback address: the token APIs answer loopback callers only, but whoever reaches it sees the status page and metrics"},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestLoadMultiRoute(t *testing.T) {
	cfg, err := Load(map[string]string{
		"CREDPROXY_ROUTES":                      " wavefront, Splunk-Org ,idp",
		"CREDPROXY_FORWARD_ADDR":                "127.0.0.1:3128",
		"CREDPROXY_WAVEFRONT_AUTH":              "csp-oauth-app",
		"CREDPROXY_WAVEFRONT_CSP_CLIENT_ID":     "id",
		"CREDPROXY_WAVEFRONT_CSP_CLIENT_SECRET": sentinel,
		"CREDPROXY_WAVEFRONT_UPSTREAM":          "https://w.example",
		"CREDPROXY_WAVEFRONT_LISTEN":            "127.0.0.1:8080",
		"CREDPROXY_SPLUNK_ORG_AUTH":             "static",
		"CREDPROXY_SPLUNK_ORG_TOKEN_FILE":       "/t",
		"CREDPROXY_SPLUNK_ORG_UPSTREAM":         "https://ingest.us1.signalfx.com",
		"CREDPROXY_SPLUNK_ORG_LISTEN":           "127.0.0.1:8081",
		"CREDPROXY_SPLUNK_ORG_HEADER":           "X-SF-Token",
		"CREDPROXY_SPLUNK_ORG_HEADER_PREFIX":    "",
		"CREDPROXY_IDP_AUTH":                    "oauth2-client-credentials",
		"CREDPROXY_IDP_TOKEN_URL":               "https://idp.example/token",
		"CREDPROXY_IDP_CLIENT_ID":               "c",
		"CREDPROXY_IDP_CLIENT_SECRET_FILE":      "/s",
		"CREDPROXY_IDP_UPSTREAM":                "https://api.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	wf := defaultRoute(KindCSPOAuthApp, "https://w.example")
	wf.Name, wf.Prefix = "wavefront", "CREDPROXY_WAVEFRONT_"
	wf.CSPURL, wf.CSPClientID = mustURL("https://console.cloud.vmware.com"), "id"
	wf.CSPClientSecret = secret.Ref{Value: secret.New(sentinel), Var: "CREDPROXY_WAVEFRONT_CSP_CLIENT_SECRET"}
	so := defaultRoute(KindStatic, "https://ingest.us1.signalfx.com")
	so.Name, so.Prefix, so.Listen = "splunk-org", "CREDPROXY_SPLUNK_ORG_", "127.0.0.1:8081"
	so.Header, so.HeaderPrefix = "X-Sf-Token", ""
	so.Static = secret.Ref{File: "/t", Var: "CREDPROXY_SPLUNK_ORG_TOKEN_FILE"}
	idp := defaultRoute(KindOAuth2ClientCredential, "https://api.example")
	idp.Name, idp.Prefix, idp.Listen = "idp", "CREDPROXY_IDP_", "" // forward mode only
	idp.TokenURL, idp.ClientID = mustURL("https://idp.example/token"), "c"
	idp.ClientSecret = secret.Ref{File: "/s", Var: "CREDPROXY_IDP_CLIENT_SECRET_FILE"}
	want := &Config{
		AdminAddr: "127.0.0.1:9901", ForwardAddr: "127.0.0.1:3128", LogLevel: "info", LogFormat: "json", ShutdownTimeout: 15 * time.Second,
		Routes: []Route{wf, so, idp},
	}
	if diff := cmp.Diff(want, cfg, urlComparer); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestLoadProblems: each missing or invalid variable is reported with the
// exact message naming it, and every problem at once, in order.
func TestLoadProblems(t *testing.T) {
	const allKindsMsg = "one of csp-api-token, csp-oauth-app, splunk-session, oauth2-client-credentials, oauth2-refresh-token, oauth2-token-exchange, static"
	static := map[string]string{"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": sentinel, "CREDPROXY_UPSTREAM": "https://a.example"}
	tcs := []struct {
		desc string
		env  map[string]string
		want []string // "VAR: message" lines, exactly, in order
	}{
		// The credential.
		{desc: "no AUTH", env: with(apiTokenEnv, "CREDPROXY_AUTH", unset),
			want: []string{"CREDPROXY_AUTH: required (" + allKindsMsg + ")"}},
		{desc: "blank AUTH", env: with(apiTokenEnv, "CREDPROXY_AUTH", "  "),
			want: []string{"CREDPROXY_AUTH: required (" + allKindsMsg + ")"}},
		{desc: "unknown AUTH", env: with(apiTokenEnv, "CREDPROXY_AUTH", "kerberos"),
			want: []string{`CREDPROXY_AUTH: "kerberos" is not a credential kind (` + allKindsMsg + ")"}},
		{desc: "csp-api-token without token", env: with(apiTokenEnv, "CREDPROXY_CSP_API_TOKEN", unset),
			want: []string{"CREDPROXY_CSP_API_TOKEN: required (or CREDPROXY_CSP_API_TOKEN_FILE) when CREDPROXY_AUTH=csp-api-token"}},
		{desc: "blank token is no token", env: with(apiTokenEnv, "CREDPROXY_CSP_API_TOKEN", " \n"),
			want: []string{"CREDPROXY_CSP_API_TOKEN: required (or CREDPROXY_CSP_API_TOKEN_FILE) when CREDPROXY_AUTH=csp-api-token"}},
		{desc: "csp-oauth-app without app", env: with(apiTokenEnv, "CREDPROXY_AUTH", "csp-oauth-app"),
			want: []string{
				"CREDPROXY_CSP_CLIENT_ID: required when CREDPROXY_AUTH=csp-oauth-app",
				"CREDPROXY_CSP_CLIENT_SECRET: required (or CREDPROXY_CSP_CLIENT_SECRET_FILE) when CREDPROXY_AUTH=csp-oauth-app",
			}},
		{desc: "splunk-session without login", env: map[string]string{"CREDPROXY_AUTH": "splunk-session"},
			want: []string{
				"CREDPROXY_SPLUNK_EMAIL: required when CREDPROXY_AUTH=splunk-session",
				"CREDPROXY_SPLUNK_PASSWORD: required (or CREDPROXY_SPLUNK_PASSWORD_FILE) when CREDPROXY_AUTH=splunk-session",
			}},
		{desc: "splunk-session with a bad realm", env: map[string]string{
			"CREDPROXY_AUTH": "splunk-session", "CREDPROXY_SPLUNK_REALM": "us1.evil.example/", "CREDPROXY_SPLUNK_EMAIL": "e", "CREDPROXY_SPLUNK_PASSWORD": sentinel},
			want: []string{`CREDPROXY_SPLUNK_REALM: "us1.evil.example/" is not a realm name (letters and digits, e.g. us1, eu0)`}},
		{desc: "oauth2-client-credentials without anything", env: map[string]string{"CREDPROXY_AUTH": "oauth2-client-credentials", "CREDPROXY_UPSTREAM": "https://a.example"},
			want: []string{
				"CREDPROXY_TOKEN_URL: required when CREDPROXY_AUTH=oauth2-client-credentials",
				"CREDPROXY_CLIENT_ID: required when CREDPROXY_AUTH=oauth2-client-credentials",
				"CREDPROXY_CLIENT_SECRET: required (or CREDPROXY_CLIENT_SECRET_FILE) when CREDPROXY_AUTH=oauth2-client-credentials",
			}},
		{desc: "oauth2-refresh-token without anything", env: map[string]string{"CREDPROXY_AUTH": "oauth2-refresh-token", "CREDPROXY_UPSTREAM": "https://a.example"},
			want: []string{
				"CREDPROXY_TOKEN_URL: required when CREDPROXY_AUTH=oauth2-refresh-token",
				"CREDPROXY_REFRESH_TOKEN: required (or CREDPROXY_REFRESH_TOKEN_FILE) when CREDPROXY_AUTH=oauth2-refresh-token",
			}},
		{desc: "oauth2-token-exchange without anything", env: map[string]string{"CREDPROXY_AUTH": "oauth2-token-exchange", "CREDPROXY_UPSTREAM": "https://a.example"},
			want: []string{
				"CREDPROXY_TOKEN_URL: required when CREDPROXY_AUTH=oauth2-token-exchange",
				"CREDPROXY_SUBJECT_TOKEN_FILE: required when CREDPROXY_AUTH=oauth2-token-exchange",
			}},
		{desc: "oauth2 with a bad auth style and an http token URL", env: map[string]string{
			"CREDPROXY_AUTH": "oauth2-refresh-token", "CREDPROXY_UPSTREAM": "https://a.example", "CREDPROXY_REFRESH_TOKEN": sentinel,
			"CREDPROXY_TOKEN_URL": "http://idp.example/token", "CREDPROXY_AUTH_STYLE": "header"},
			want: []string{
				`CREDPROXY_TOKEN_URL: "http://idp.example/token": plain http would expose the credential; use https (or CREDPROXY_ALLOW_INSECURE_UPSTREAM=true in tests)`,
				`CREDPROXY_AUTH_STYLE: "header" is not basic or body`,
			}},
		{desc: "static without token", env: with(static, "CREDPROXY_TOKEN", unset),
			want: []string{"CREDPROXY_TOKEN: required (or CREDPROXY_TOKEN_FILE) when CREDPROXY_AUTH=static"}},

		// Both a secret and its file.
		{desc: "api token and file", env: with(apiTokenEnv, "CREDPROXY_CSP_API_TOKEN_FILE", "/x"),
			want: []string{"CREDPROXY_CSP_API_TOKEN_FILE: set either CREDPROXY_CSP_API_TOKEN or CREDPROXY_CSP_API_TOKEN_FILE, not both"}},
		{desc: "client secret and file", env: map[string]string{
			"CREDPROXY_AUTH": "csp-oauth-app", "CREDPROXY_CSP_CLIENT_ID": "id", "CREDPROXY_CSP_CLIENT_SECRET": sentinel,
			"CREDPROXY_CSP_CLIENT_SECRET_FILE": "/s", "CREDPROXY_UPSTREAM": "https://a.example"},
			want: []string{"CREDPROXY_CSP_CLIENT_SECRET_FILE: set either CREDPROXY_CSP_CLIENT_SECRET or CREDPROXY_CSP_CLIENT_SECRET_FILE, not both"}},
		{desc: "optional client secret and file", env: map[string]string{
			"CREDPROXY_AUTH": "oauth2-token-exchange", "CREDPROXY_TOKEN_URL": "https://sts.example", "CREDPROXY_SUBJECT_TOKEN_FILE": "/t",
			"CREDPROXY_CLIENT_SECRET": sentinel, "CREDPROXY_CLIENT_SECRET_FILE": "/s", "CREDPROXY_UPSTREAM": "https://a.example"},
			want: []string{"CREDPROXY_CLIENT_SECRET_FILE: set either CREDPROXY_CLIENT_SECRET or CREDPROXY_CLIENT_SECRET_FILE, not both"}},
		{desc: "static token and file", env: with(static, "CREDPROXY_TOKEN_FILE", "/t"),
			want: []string{"CREDPROXY_TOKEN_FILE: set either CREDPROXY_TOKEN or CREDPROXY_TOKEN_FILE, not both"}},

		// URLs.
		{desc: "no upstream", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", unset),
			want: []string{"CREDPROXY_UPSTREAM: required: the https:// base URL of the API"}},
		{desc: "plain http upstream", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "http://w.example"),
			want: []string{`CREDPROXY_UPSTREAM: "http://w.example": plain http would expose the credential; use https (or CREDPROXY_ALLOW_INSECURE_UPSTREAM=true in tests)`}},
		{desc: "other scheme", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "ftp://w.example"),
			want: []string{`CREDPROXY_UPSTREAM: "ftp://w.example": want an https:// URL`}},
		{desc: "no scheme", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "w.example"),
			want: []string{`CREDPROXY_UPSTREAM: "w.example": want an https:// URL`}},
		{desc: "no host", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https:///path"),
			want: []string{`CREDPROXY_UPSTREAM: "https:///path" has no host (want https://host/path)`}},
		{desc: "opaque", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https:w.example"),
			want: []string{`CREDPROXY_UPSTREAM: "https:w.example" has no host (want https://host/path)`}},
		{desc: "bad host", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://w..example"),
			want: []string{`CREDPROXY_UPSTREAM: "https://w..example": "w..example" is not a valid host name`}},
		{desc: "bad port", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://w.example:0"),
			want: []string{`CREDPROXY_UPSTREAM: "https://w.example:0": bad port`}},
		{desc: "empty port", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://w.example:"),
			want: []string{`CREDPROXY_UPSTREAM: "https://w.example:": bad port`}},
		{desc: "not a URL", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://w.example/%zz"),
			want: []string{`CREDPROXY_UPSTREAM: "https://w.example/%zz" is not a valid URL`}},
		{desc: "user info is not quoted", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "http://user:"+sentinel+"@w.example"),
			want: []string{"CREDPROXY_UPSTREAM: must not contain user information (user:password@): credentials go in their own variables"}},
		{desc: "unparsable URL with user info is not quoted", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://u:"+sentinel+"%zz@w.example"),
			want: []string{"CREDPROXY_UPSTREAM: is not a valid URL"}},
		{desc: "query is not quoted", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://w.example/?api_key="+sentinel),
			want: []string{"CREDPROXY_UPSTREAM: a base URL has no query (?...) or fragment (#...)"}},
		{desc: "fragment", env: with(apiTokenEnv, "CREDPROXY_UPSTREAM", "https://w.example/#"),
			want: []string{"CREDPROXY_UPSTREAM: a base URL has no query (?...) or fragment (#...)"}},
		{desc: "plain http CSP URL", env: with(apiTokenEnv, "CREDPROXY_CSP_URL", "http://csp.example"),
			want: []string{`CREDPROXY_CSP_URL: "http://csp.example": plain http would expose the credential; use https (or CREDPROXY_ALLOW_INSECURE_UPSTREAM=true in tests)`}},

		// Where the credential goes.
		{desc: "hosts", env: with(static, "CREDPROXY_HOSTS", "https://a.example, *.example.com, a.example:0, a.example:x, a b, [::1"),
			want: []string{
				`CREDPROXY_HOSTS: "https://a.example": want a host name or host:port, not a URL`,
				`CREDPROXY_HOSTS: "*.example.com": wildcards are not supported: list each host name`,
				`CREDPROXY_HOSTS: "a.example:0": bad port`,
				`CREDPROXY_HOSTS: "a.example:x": bad port`,
				`CREDPROXY_HOSTS: "a b": bad host name`,
				`CREDPROXY_HOSTS: "[::1": want a host name or host:port`,
			}},
		{desc: "header not a token", env: with(static, "CREDPROXY_HEADER", "X Token:"),
			want: []string{`CREDPROXY_HEADER: "X Token:" is not a valid header name`}},
		{desc: "hop-by-hop header", env: with(static, "CREDPROXY_HEADER", "connection"),
			want: []string{`CREDPROXY_HEADER: "connection" is managed by HTTP itself and cannot carry a credential`}},
		{desc: "host header", env: with(static, "CREDPROXY_HEADER", "Host"),
			want: []string{`CREDPROXY_HEADER: "Host" is managed by HTTP itself and cannot carry a credential`}},
		{desc: "header prefix with a line break", env: with(static, "CREDPROXY_HEADER_PREFIX", "Bearer\r\nX-Evil: 1"),
			want: []string{"CREDPROXY_HEADER_PREFIX: must not contain control characters such as line breaks"}},
		{desc: "header prefix not ASCII", env: with(static, "CREDPROXY_HEADER_PREFIX", "Bé"),
			want: []string{"CREDPROXY_HEADER_PREFIX: must be printable ASCII (an authentication scheme such as Bearer)"}},
		{desc: "duration too long", env: with(static, "CREDPROXY_TOKEN_WAIT", "9999999h"),
			want: []string{`CREDPROXY_TOKEN_WAIT: "9999999h" is a duration too long to hold (at most 2562047h)`}},

		// Timing.
		{desc: "refresh fraction too high", env: with(static, "CREDPROXY_REFRESH_AT", "1.5"),
			want: []string{"CREDPROXY_REFRESH_AT: 1.5 is outside 0.1-0.9: the fraction of a token's lifetime after which it is renewed"}},
		{desc: "refresh fraction NaN", env: with(static, "CREDPROXY_REFRESH_AT", "NaN"),
			want: []string{"CREDPROXY_REFRESH_AT: NaN is outside 0.1-0.9: the fraction of a token's lifetime after which it is renewed"}},
		{desc: "negative expiry margin", env: with(static, "CREDPROXY_EXPIRY_MARGIN", "-1s"),
			want: []string{"CREDPROXY_EXPIRY_MARGIN: -1s must not be negative (unset: automatic)"}},
		{desc: "short default TTL", env: with(static, "CREDPROXY_DEFAULT_TTL", "9.999s"),
			want: []string{"CREDPROXY_DEFAULT_TTL: 9.999s is too short (at least 10s)"}},
		{desc: "long token wait", env: with(static, "CREDPROXY_TOKEN_WAIT", "5m1ns"),
			want: []string{"CREDPROXY_TOKEN_WAIT: 5m0.000000001s is outside 0-5m"}},
		{desc: "zero exchange timeout", env: with(static, "CREDPROXY_EXCHANGE_TIMEOUT", "0s"),
			want: []string{"CREDPROXY_EXCHANGE_TIMEOUT: 0s is outside 0-5m (0 excluded)"}},
		{desc: "credential expiry as a date only", env: with(static, "CREDPROXY_CREDENTIAL_EXPIRES_AT", "2026-09-30"),
			want: []string{`CREDPROXY_CREDENTIAL_EXPIRES_AT: "2026-09-30" is not an RFC 3339 time (e.g. 2027-06-30T00:00:00Z)`}},
		{desc: "credential expiry without a zone", env: with(static, "CREDPROXY_CREDENTIAL_EXPIRES_AT", "2026-09-30T00:00:00"),
			want: []string{`CREDPROXY_CREDENTIAL_EXPIRES_AT: "2026-09-30T00:00:00" is not an RFC 3339 time (e.g. 2027-06-30T00:00:00Z)`}},
		{desc: "named route's credential expiry", env: map[string]string{"CREDPROXY_ROUTES": "wf", "CREDPROXY_WF_AUTH": "static", "CREDPROXY_WF_TOKEN": sentinel,
			"CREDPROXY_WF_UPSTREAM": "https://a.example", "CREDPROXY_WF_LISTEN": "127.0.0.1:8080", "CREDPROXY_WF_CREDENTIAL_EXPIRES_AT": "next tuesday"},
			want: []string{`CREDPROXY_WF_CREDENTIAL_EXPIRES_AT: "next tuesday" is not an RFC 3339 time (e.g. 2027-06-30T00:00:00Z)`}},

		// Values caarlos0/env cannot parse: reported once, by full name.
		{desc: "bad values of every type", env: with(static,
			"CREDPROXY_SHUTDOWN_TIMEOUT", "abc", "CREDPROXY_TOKEN_API", "perhaps", "CREDPROXY_REFRESH_AT", "most",
			"CREDPROXY_DEFAULT_TTL", "5", "CREDPROXY_ALLOW_INSECURE_UPSTREAM", "yes"),
			want: []string{
				`CREDPROXY_TOKEN_API: "perhaps" is not a boolean (true or false)`,
				`CREDPROXY_SHUTDOWN_TIMEOUT: "abc" is not a duration (e.g. 15s, 1m)`,
				`CREDPROXY_REFRESH_AT: "most" is not a number (e.g. 0.66)`,
				`CREDPROXY_DEFAULT_TTL: "5" is not a duration (e.g. 15s, 1m)`,
				`CREDPROXY_ALLOW_INSECURE_UPSTREAM: "yes" is not a boolean (true or false)`,
			}},

		// Globals.
		{desc: "log level and format", env: with(static, "CREDPROXY_LOG_LEVEL", "trace", "CREDPROXY_LOG_FORMAT", "xml"),
			want: []string{
				`CREDPROXY_LOG_LEVEL: "trace" is not one of debug, info, warn, error`,
				`CREDPROXY_LOG_FORMAT: "xml" is not one of json, console`,
			}},
		{desc: "allowed hosts that are not plain names", env: with(static, "CREDPROXY_ALLOWED_HOSTS", "ok.example,http://a.example,b.example:8080,*.example,bad_host!"),
			want: []string{
				`CREDPROXY_ALLOWED_HOSTS: "http://a.example": want a plain host name (e.g. credproxy.internal), not a URL`,
				`CREDPROXY_ALLOWED_HOSTS: "b.example:8080": want a plain host name without a port (any port is accepted)`,
				`CREDPROXY_ALLOWED_HOSTS: "*.example": wildcards are not supported: list each host name`,
				`CREDPROXY_ALLOWED_HOSTS: "bad_host!": not a valid host name`,
			}},
		{desc: "allowed origins that are not origins", env: with(static, "CREDPROXY_ALLOWED_ORIGINS",
			"https://ok.example,grafana.example.com,https://a.example/,https://b.example/app,ftp://c.example,https://u:p@d.example,https://e.example?x,null,https://f.example:99999,https://*.example"),
			want: []string{
				`CREDPROXY_ALLOWED_ORIGINS: "grafana.example.com": want an origin, scheme://host[:port] (e.g. https://grafana.example.com)`,
				`CREDPROXY_ALLOWED_ORIGINS: "https://a.example/": an origin has no path, not even /`,
				`CREDPROXY_ALLOWED_ORIGINS: "https://b.example/app": an origin has no path, not even /`,
				`CREDPROXY_ALLOWED_ORIGINS: "ftp://c.example": the scheme must be http or https`,
				`CREDPROXY_ALLOWED_ORIGINS: an origin has no user information, query or fragment`,
				`CREDPROXY_ALLOWED_ORIGINS: an origin has no user information, query or fragment`,
				`CREDPROXY_ALLOWED_ORIGINS: "null": want an origin, scheme://host[:port] (e.g. https://grafana.example.com); null (sandboxed pages, file:) cannot be allowed`,
				`CREDPROXY_ALLOWED_ORIGINS: "https://f.example:99999": bad port`,
				`CREDPROXY_ALLOWED_ORIGINS: "https://*.example": wildcards are not supported: list each origin`,
			}},
		{desc: "negative shutdown timeout", env: with(static, "CREDPROXY_SHUTDOWN_TIMEOUT", "-1s"),
			want: []string{"CREDPROXY_SHUTDOWN_TIMEOUT: must not be negative"}},
		{desc: "CA cert without key", env: with(static, "CREDPROXY_CA_CERT_FILE", "/c"),
			want: []string{"CREDPROXY_CA_KEY_FILE: required when CREDPROXY_CA_CERT_FILE is set (set both or neither)"}},
		{desc: "CA key without cert", env: with(static, "CREDPROXY_CA_KEY_FILE", "/k"),
			want: []string{"CREDPROXY_CA_CERT_FILE: required when CREDPROXY_CA_KEY_FILE is set (set both or neither)"}},

		// Listeners.
		{desc: "listen not host:port", env: with(static, "CREDPROXY_LISTEN", "8080"),
			want: []string{`CREDPROXY_LISTEN: "8080" is not host:port or unix:/path.sock (e.g. 127.0.0.1:8080)`}},
		{desc: "listen port with a sign", env: with(static, "CREDPROXY_LISTEN", "127.0.0.1:+80"),
			want: []string{`CREDPROXY_LISTEN: "127.0.0.1:+80" is not host:port or unix:/path.sock (e.g. 127.0.0.1:8080)`}},
		{desc: "listen port too high", env: with(static, "CREDPROXY_LISTEN", "127.0.0.1:65536"),
			want: []string{`CREDPROXY_LISTEN: "127.0.0.1:65536" is not host:port or unix:/path.sock (e.g. 127.0.0.1:8080)`}},
		{desc: "bad admin and forward addresses", env: with(static, "CREDPROXY_ADMIN_ADDR", "localhost", "CREDPROXY_FORWARD_ADDR", "a b:1"),
			want: []string{
				`CREDPROXY_ADMIN_ADDR: "localhost" is not host:port or unix:/path.sock (e.g. 127.0.0.1:8080)`,
				`CREDPROXY_FORWARD_ADDR: "a b:1" is not host:port or unix:/path.sock (e.g. 127.0.0.1:8080)`,
			}},
		{desc: "listener on the admin address", env: with(static, "CREDPROXY_LISTEN", "127.0.0.1:9901"),
			want: []string{"CREDPROXY_LISTEN: 127.0.0.1:9901 is already used by CREDPROXY_ADMIN_ADDR"}},
		{desc: "forward on a wildcard of the listen port", env: with(static, "CREDPROXY_FORWARD_ADDR", ":8080"),
			want: []string{"CREDPROXY_LISTEN: 127.0.0.1:8080 is already used by CREDPROXY_FORWARD_ADDR"}},
		{desc: "localhost is loopback", env: with(static, "CREDPROXY_ADMIN_ADDR", "localhost:8080"),
			want: []string{"CREDPROXY_LISTEN: 127.0.0.1:8080 is already used by CREDPROXY_ADMIN_ADDR"}},

		// Routes.
		{desc: "bad route names", env: map[string]string{"CREDPROXY_ROUTES": "ok,-bad,OK,a.b"},
			want: []string{
				`CREDPROXY_ROUTES: route name "-bad": use letters, digits, '_' and '-', starting with a letter or digit`,
				`CREDPROXY_ROUTES: routes "ok" and "OK" both use the variables CREDPROXY_OK_*`,
				`CREDPROXY_ROUTES: route name "a.b": use letters, digits, '_' and '-', starting with a letter or digit`,
				"CREDPROXY_OK_AUTH: required (" + allKindsMsg + ")",
				"CREDPROXY_OK_UPSTREAM: required: the https:// base URL of the API",
			}},
		{desc: "route names the same after mapping", env: with(static, "CREDPROXY_AUTH", unset, "CREDPROXY_TOKEN", unset, "CREDPROXY_UPSTREAM", unset,
			"CREDPROXY_ROUTES", "a-b,a_b", "CREDPROXY_A_B_AUTH", "static", "CREDPROXY_A_B_TOKEN", "t", "CREDPROXY_A_B_UPSTREAM", "https://a.example", "CREDPROXY_A_B_LISTEN", "127.0.0.1:1"),
			want: []string{`CREDPROXY_ROUTES: routes "a-b" and "a_b" both use the variables CREDPROXY_A_B_*`}},
		{desc: "routes sharing a variable", env: map[string]string{
			"CREDPROXY_ROUTES": "a,a-csp", "CREDPROXY_FORWARD_ADDR": "127.0.0.1:3128",
			"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN": "t", "CREDPROXY_A_UPSTREAM": "https://a.example",
			"CREDPROXY_A_CSP_AUTH": "static", "CREDPROXY_A_CSP_TOKEN": "t", "CREDPROXY_A_CSP_UPSTREAM": "https://b.example"},
			want: []string{`CREDPROXY_ROUTES: routes "a" and "a-csp" both read CREDPROXY_A_CSP_CLIENT_ID: rename one of them`}},
		{desc: "routes listing nothing", env: map[string]string{"CREDPROXY_ROUTES": " , "},
			want: []string{`CREDPROXY_ROUTES: " , " lists no route names`}},
		{desc: "two routes on one address", env: map[string]string{
			"CREDPROXY_ROUTES": "a,b",
			"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN": "t", "CREDPROXY_A_UPSTREAM": "https://a.example", "CREDPROXY_A_LISTEN": "127.0.0.1:8080",
			"CREDPROXY_B_AUTH": "static", "CREDPROXY_B_TOKEN": "t", "CREDPROXY_B_UPSTREAM": "https://b.example", "CREDPROXY_B_LISTEN": "[::]:8080"},
			want: []string{"CREDPROXY_B_LISTEN: [::]:8080 is already used by CREDPROXY_A_LISTEN"}},
		{desc: "default-route variables with ROUTES", env: with(apiTokenEnv, "CREDPROXY_REFRESH_AT", "0.5",
			"CREDPROXY_ROUTES", "a", "CREDPROXY_A_AUTH", "static", "CREDPROXY_A_TOKEN", "t", "CREDPROXY_A_UPSTREAM", "https://a.example", "CREDPROXY_A_LISTEN", "127.0.0.1:1"),
			want: []string{
				"CREDPROXY_AUTH: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_AUTH",
				"CREDPROXY_UPSTREAM: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_UPSTREAM",
				"CREDPROXY_CSP_API_TOKEN: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_CSP_API_TOKEN",
				"CREDPROXY_REFRESH_AT: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_REFRESH_AT",
			}},

		// Everything at once: globals first, then each route in the order
		// of CREDPROXY_ROUTES, each in the order of Variables.
		{desc: "several problems in order", env: map[string]string{
			"CREDPROXY_ROUTES": "zeta,alpha", "CREDPROXY_LOG_FORMAT": "xml", "CREDPROXY_SHUTDOWN_TIMEOUT": "x",
			"CREDPROXY_ZETA_AUTH": "static", "CREDPROXY_ZETA_TOKEN": sentinel, "CREDPROXY_ZETA_TOKEN_FILE": "/t",
			"CREDPROXY_ZETA_LISTEN": "127.0.0.1:9901", "CREDPROXY_ZETA_REFRESH_AT": "2",
			"CREDPROXY_ALPHA_AUTH": "csp-oauth-app", "CREDPROXY_ALPHA_UPSTREAM": "http://a.example",
			"CREDPROXY_AUTH": "static"},
			want: []string{
				`CREDPROXY_LOG_FORMAT: "xml" is not one of json, console`,
				`CREDPROXY_SHUTDOWN_TIMEOUT: "x" is not a duration (e.g. 15s, 1m)`,
				"CREDPROXY_AUTH: ignored because CREDPROXY_ROUTES is set; use CREDPROXY_<ROUTE>_AUTH",
				"CREDPROXY_ZETA_UPSTREAM: required: the https:// base URL of the API",
				"CREDPROXY_ZETA_LISTEN: 127.0.0.1:9901 is already used by CREDPROXY_ADMIN_ADDR",
				"CREDPROXY_ZETA_TOKEN_FILE: set either CREDPROXY_ZETA_TOKEN or CREDPROXY_ZETA_TOKEN_FILE, not both",
				"CREDPROXY_ZETA_REFRESH_AT: 2 is outside 0.1-0.9: the fraction of a token's lifetime after which it is renewed",
				`CREDPROXY_ALPHA_UPSTREAM: "http://a.example": plain http would expose the credential; use https (or CREDPROXY_ALPHA_ALLOW_INSECURE_UPSTREAM=true in tests)`,
				"CREDPROXY_ALPHA_CSP_CLIENT_ID: required when CREDPROXY_ALPHA_AUTH=csp-oauth-app",
				"CREDPROXY_ALPHA_CSP_CLIENT_SECRET: required (or CREDPROXY_ALPHA_CSP_CLIENT_SECRET_FILE) when CREDPROXY_ALPHA_AUTH=csp-oauth-app",
			}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Load(tc.env)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if cfg != nil {
				t.Errorf("cfg = %+v, want nil with an error", cfg)
			}
			var got []string
			for _, p := range ce.Problems {
				got = append(got, p.Var+": "+p.Msg)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(strings.Join(tc.want, "\n"), err.Error()); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error leaks the secret:\n%s", err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tcs := []struct {
		desc string
		env  map[string]string
		want []string
	}{
		{desc: "none", env: apiTokenEnv},
		{desc: "listener off loopback", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "0.0.0.0:8080", "CREDPROXY_FORWARD_ADDR", "10.0.0.1:3128"),
			want: []string{
				"CREDPROXY_FORWARD_ADDR=10.0.0.1:3128 is not a loopback address: whoever reaches it can use the credentials",
				"CREDPROXY_LISTEN=0.0.0.0:8080 is not a loopback address: whoever reaches it can use the credential",
			}},
		{desc: "loopback forms", env: with(apiTokenEnv, "CREDPROXY_LISTEN", "LocalHost:8080", "CREDPROXY_FORWARD_ADDR", "[::1]:3128", "CREDPROXY_ADMIN_ADDR", "127.1.2.3:9901")},
		{desc: "admin off loopback without the token API: probes need it", env: with(apiTokenEnv, "CREDPROXY_ADMIN_ADDR", ":9901")},
		{desc: "unknown variables", env: with(apiTokenEnv, "CREDPROXY_CSP_API_TOKN", sentinel, "CREDPROXY_FROBNICATE", "1", "OTHER_VARIABLE", "x"),
			want: []string{
				"CREDPROXY_CSP_API_TOKN is not a credproxy variable and is ignored (did you mean CREDPROXY_CSP_API_TOKEN?)",
				"CREDPROXY_FROBNICATE is not a credproxy variable and is ignored",
			}},
		{desc: "misspelt credential expiry", env: with(apiTokenEnv, "CREDPROXY_CREDENTIAL_EXPIRE_AT", "2027-06-30T00:00:00Z"),
			want: []string{"CREDPROXY_CREDENTIAL_EXPIRE_AT is not a credproxy variable and is ignored (did you mean CREDPROXY_CREDENTIAL_EXPIRES_AT?)"}},
		{desc: "splunk-session to an ingest upstream", env: with(splunkEnv, "CREDPROXY_UPSTREAM", "https://ingest.us1.signalfx.com"),
			want: []string{"route default: CREDPROXY_UPSTREAM ingest.us1.signalfx.com is a Splunk ingest host, and a splunk-session token cannot authenticate ingest (/v2/datapoint, /v2/event): " +
				"send ingest through its own route with AUTH=static and an org access token in TOKEN_FILE"}},
		{desc: "splunk-session with ingest hosts in HOSTS", env: map[string]string{
			"CREDPROXY_ROUTES": "sfx", "CREDPROXY_SFX_AUTH": "splunk-session", "CREDPROXY_SFX_SPLUNK_REALM": "eu0", "CREDPROXY_SFX_SPLUNK_EMAIL": "e",
			"CREDPROXY_SFX_SPLUNK_PASSWORD": sentinel, "CREDPROXY_SFX_LISTEN": "127.0.0.1:8080",
			"CREDPROXY_SFX_HOSTS": "stream.eu0.signalfx.com,INGEST.eu0.signalfx.com:443,api.eu0.signalfx.com,ingest.signalfx.com"},
			want: []string{"route sfx: CREDPROXY_SFX_HOSTS ingest.eu0.signalfx.com, CREDPROXY_SFX_HOSTS ingest.signalfx.com is a Splunk ingest host, and a splunk-session token cannot authenticate ingest (/v2/datapoint, /v2/event): " +
				"send ingest through its own route with AUTH=static and an org access token in TOKEN_FILE"}},
		{desc: "splunk-session to the API and SignalFlow hosts", env: with(splunkEnv, "CREDPROXY_HOSTS", "stream.us1.signalfx.com,api.signalfx.com")},
		{desc: "static org token to ingest", env: map[string]string{
			"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": sentinel, "CREDPROXY_UPSTREAM": "https://ingest.us1.signalfx.com", "CREDPROXY_HOSTS": "ingest.us0.signalfx.com"}},
		{desc: "route variable of an unlisted route", env: map[string]string{
			"CREDPROXY_ROUTES": "a", "CREDPROXY_FORWARD_ADDR": "127.0.0.1:3128",
			"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN": "t", "CREDPROXY_A_UPSTREAM": "https://a.example",
			"CREDPROXY_B_AUTH": "static", "CREDPROXY_A_UPSTREM": "x"},
			want: []string{
				"CREDPROXY_A_UPSTREM is not a credproxy variable and is ignored (did you mean CREDPROXY_A_UPSTREAM?)",
				"CREDPROXY_B_AUTH is not a credproxy variable and is ignored (did you mean CREDPROXY_A_AUTH?)",
			}},
		{desc: "named route without listener, token API on", env: map[string]string{
			"CREDPROXY_ROUTES": "a", "CREDPROXY_TOKEN_API": "true", "CREDPROXY_A_LOCAL_CLIENT_SECRET_FILE": "/run/local",
			"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN": "t", "CREDPROXY_A_UPSTREAM": "https://a.example"},
			want: []string{"route a has neither CREDPROXY_A_LISTEN nor CREDPROXY_FORWARD_ADDR: it is reachable only through the token API"}},
		{desc: "named route without listener, token API off", env: map[string]string{
			"CREDPROXY_ROUTES": "a", "CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN": "t", "CREDPROXY_A_UPSTREAM": "https://a.example"},
			want: []string{"route a has neither CREDPROXY_A_LISTEN nor CREDPROXY_FORWARD_ADDR, and CREDPROXY_TOKEN_API is off: nothing can use it"}},
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
			for _, w := range cfg.Warnings {
				if strings.Contains(w, sentinel) {
					t.Errorf("warning leaks a value: %s", w)
				}
			}
		})
	}
}

// splunkEnv is a splunk-session default route in realm us1 (upstream
// api.us1.signalfx.com).
var splunkEnv = map[string]string{
	"CREDPROXY_AUTH": "splunk-session", "CREDPROXY_SPLUNK_REALM": "us1", "CREDPROXY_SPLUNK_EMAIL": "e", "CREDPROXY_SPLUNK_PASSWORD": sentinel,
}

func TestIsSplunkIngestHost(t *testing.T) {
	for host, want := range map[string]bool{
		"ingest.us1.signalfx.com": true, "ingest.signalfx.com": true, "Ingest.EU0.signalfx.com.": true,
		"rum-ingest.us1.signalfx.com": true, "backfill.signalfx.com": true,
		"ingest.us1.observability.splunkcloud.com": true,
		"api.us1.signalfx.com":                     false, "stream.us1.signalfx.com": false, "api.signalfx.com": false,
		"ingest.example.com": false, "ingest.us1.signalfx.com.evil.example": false, "ingest.a.b.signalfx.com": false,
		"signalfx.com": false, "ingest": false, "": false, "ingest.observability.splunkcloud.com": false,
	} {
		if got := isSplunkIngestHost(host); got != want {
			t.Errorf("isSplunkIngestHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestSecretsNeverFormatted: a loaded configuration prints secret values
// as fingerprints, whatever the verb.
func TestSecretsNeverFormatted(t *testing.T) {
	for _, env := range []map[string]string{
		apiTokenEnv,
		{"CREDPROXY_AUTH": "csp-oauth-app", "CREDPROXY_CSP_CLIENT_ID": "id", "CREDPROXY_CSP_CLIENT_SECRET": sentinel, "CREDPROXY_UPSTREAM": "https://a.example"},
		{"CREDPROXY_AUTH": "splunk-session", "CREDPROXY_SPLUNK_EMAIL": "e", "CREDPROXY_SPLUNK_PASSWORD": sentinel},
		{"CREDPROXY_AUTH": "oauth2-client-credentials", "CREDPROXY_CLIENT_ID": "c", "CREDPROXY_CLIENT_SECRET": sentinel,
			"CREDPROXY_TOKEN_URL": "https://idp.example/token", "CREDPROXY_UPSTREAM": "https://a.example"},
		{"CREDPROXY_AUTH": "oauth2-refresh-token", "CREDPROXY_REFRESH_TOKEN": sentinel, "CREDPROXY_CLIENT_SECRET": sentinel,
			"CREDPROXY_TOKEN_URL": "https://idp.example/token", "CREDPROXY_UPSTREAM": "https://a.example"},
		{"CREDPROXY_AUTH": "static", "CREDPROXY_TOKEN": sentinel, "CREDPROXY_UPSTREAM": "https://a.example"},
	} {
		cfg, err := Load(env)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", cfg.Routes[0]), fmt.Sprint(cfg.Warnings)} {
			if strings.Contains(s, sentinel) {
				t.Fatalf("formatted config leaks the secret: %s", s)
			}
		}
	}
}

// TestLoadReadsOnlyItsArgument: caarlos0/env reads the process environment
// when given none; Load must not.
func TestLoadReadsOnlyItsArgument(t *testing.T) {
	t.Setenv("CREDPROXY_AUTH", "static")
	t.Setenv("CREDPROXY_TOKEN", "t")
	t.Setenv("CREDPROXY_UPSTREAM", "https://a.example")
	for _, env := range []map[string]string{nil, {}} {
		_, err := Load(env)
		var ce *Error
		if !errors.As(err, &ce) || ce.Problems[0].Var != "CREDPROXY_AUTH" {
			t.Errorf("Load(%#v) = %v, want CREDPROXY_AUTH required", env, err)
		}
	}
}

// TestVariables pins the contract's variable names (docs/design.md
// "Configuration") and checks that each is documented.
func TestVariables(t *testing.T) {
	var globals, route []string
	for _, v := range Variables() {
		if v.Doc == "" {
			t.Errorf("%s has no doc", v.Name)
		}
		if v.PerRoute {
			route = append(route, v.Name)
		} else {
			globals = append(globals, v.Name)
		}
	}
	wantGlobals := []string{
		"CREDPROXY_ROUTES", "CREDPROXY_ADMIN_ADDR", "CREDPROXY_FORWARD_ADDR", "CREDPROXY_CA_CERT_FILE", "CREDPROXY_CA_KEY_FILE",
		"CREDPROXY_FORWARD_DENY_OTHERS", "CREDPROXY_FORWARD_KEYS_FILE", "CREDPROXY_TOKEN_API", "CREDPROXY_ALLOWED_HOSTS", "CREDPROXY_ALLOWED_ORIGINS",
		"CREDPROXY_AUDIT_LOG", "CREDPROXY_LOG_LEVEL", "CREDPROXY_LOG_FORMAT", "CREDPROXY_SHUTDOWN_TIMEOUT",
	}
	wantRoute := []string{
		"AUTH", "UPSTREAM", "LISTEN", "LISTEN_MODE", "HOSTS", "HEADER", "HEADER_PREFIX",
		"CLIENT_KEYS_FILE", "ALLOW", "ALLOW_UIDS", "ALLOW_GIDS",
		"CSP_URL", "CSP_API_TOKEN", "CSP_API_TOKEN_FILE", "CSP_CLIENT_ID", "CSP_CLIENT_SECRET", "CSP_CLIENT_SECRET_FILE", "CSP_ORG_ID",
		"SPLUNK_REALM", "SPLUNK_EMAIL", "SPLUNK_PASSWORD", "SPLUNK_PASSWORD_FILE", "SPLUNK_ORG_ID",
		"TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET", "CLIENT_SECRET_FILE", "SCOPES", "AUDIENCE", "AUTH_STYLE",
		"REFRESH_TOKEN", "REFRESH_TOKEN_FILE", "SUBJECT_TOKEN_FILE", "SUBJECT_TOKEN_TYPE", "TOKEN", "TOKEN_FILE",
		"REFRESH_AT", "EXPIRY_MARGIN", "DEFAULT_TTL", "TOKEN_WAIT", "EXCHANGE_TIMEOUT",
		"LOCAL_CLIENT_SECRET", "LOCAL_CLIENT_SECRET_FILE", "TOKEN_SINK_FILE", "TOKEN_SINK_MODE", "CREDENTIAL_EXPIRES_AT", "ALLOW_INSECURE_UPSTREAM",
	}
	if diff := cmp.Diff(wantGlobals, globals); diff != "" {
		t.Errorf("global variables (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantRoute, route); diff != "" {
		t.Errorf("route variables (-want +got):\n%s", diff)
	}
	var secrets []string
	for _, v := range Variables() {
		if v.Secret {
			secrets = append(secrets, v.Name)
			if !slices.Contains(route, v.Name+"_FILE") {
				t.Errorf("secret %s has no _FILE variant", v.Name)
			}
		}
	}
	if diff := cmp.Diff([]string{"CSP_API_TOKEN", "CSP_CLIENT_SECRET", "SPLUNK_PASSWORD", "CLIENT_SECRET", "REFRESH_TOKEN", "TOKEN", "LOCAL_CLIENT_SECRET"}, secrets); diff != "" {
		t.Errorf("secret variables (-want +got):\n%s", diff)
	}
}

// FuzzLoad: whatever the environment, Load returns a config or an error
// and never both, never panics, gives the same answer twice, returns only
// routes that hold together, and never puts a secret value into a message.
//
// The input is "NAME=value" lines; CREDPROXY_ is put before each name.
// Values of secret variables get the sentinel in front.
func FuzzLoad(f *testing.F) {
	f.Add("AUTH=csp-api-token\nCSP_API_TOKEN=x\nUPSTREAM=https://w.example/")
	f.Add("AUTH=csp-oauth-app\nCSP_CLIENT_ID=id\nCSP_CLIENT_SECRET_FILE=/s\nUPSTREAM=http://[::1]:80/x\nALLOW_INSECURE_UPSTREAM=true\nLISTEN=[::1]:0")
	f.Add("ROUTES=a, b-c\nA_AUTH=static\nA_TOKEN=t\nA_UPSTREAM=https://a.example\nA_LISTEN=127.0.0.1:1\n" +
		"B_C_AUTH=splunk-session\nB_C_SPLUNK_EMAIL=e\nB_C_SPLUNK_PASSWORD=p\nB_C_SPLUNK_REALM=us1\nFORWARD_ADDR=:3128")
	f.Add("AUTH=oauth2-refresh-token\nTOKEN_URL=https://u:p@idp/?q#f\nREFRESH_TOKEN=r\nREFRESH_TOKEN_FILE=/r\nUPSTREAM=https://a\nHOSTS=[::1],a:1,*\nHEADER=X-T\nHEADER_PREFIX=\r")
	f.Add("AUTH=static\nTOKEN=t\nUPSTREAM=https://a\nREFRESH_AT=NaN\nDEFAULT_TTL=1e99h\nTOKEN_WAIT=-1s\nSHUTDOWN_TIMEOUT=%\nROUTES=,,\nAUTH_STYLE=x")
	var secretSuffixes []string
	for _, v := range Variables() {
		if v.Secret {
			secretSuffixes = append(secretSuffixes, v.Name)
		}
	}
	isSecret := func(k string) bool {
		for _, s := range secretSuffixes {
			if k == Prefix+s || strings.HasSuffix(k, "_"+s) {
				return true
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, data string) {
		env := map[string]string{}
		checkLeak := true
		for _, line := range strings.Split(data, "\n") {
			k, v, _ := strings.Cut(line, "=")
			k = Prefix + k
			if isSecret(k) {
				v = sentinel + v
			} else if strings.Contains(k+v, sentinel) {
				checkLeak = false // the input itself shows it
			}
			env[k] = v
		}
		cfg, err := Load(env)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("cfg %v, err %v: want exactly one", cfg, err)
		}
		cfg2, err2 := Load(env)
		if fmt.Sprint(err) != fmt.Sprint(err2) || (cfg != nil && !slices.Equal(cfg.Warnings, cfg2.Warnings)) {
			t.Fatalf("Load is not deterministic:\n%v\n%v", err, err2)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("err %v: want an *Error with problems", err)
			}
			if checkLeak && strings.Contains(err.Error(), sentinel) {
				t.Fatalf("error leaks a secret:\n%v", err)
			}
			return
		}
		if checkLeak && (strings.Contains(fmt.Sprintf("%+v", cfg), sentinel) || strings.Contains(strings.Join(cfg.Warnings, "\n"), sentinel)) {
			t.Fatalf("config leaks a secret: %+v", cfg)
		}
		if len(cfg.Routes) == 0 {
			t.Fatal("no routes")
		}
		for _, r := range cfg.Routes {
			switch {
			case !slices.Contains(allKinds, r.Auth):
				t.Errorf("route %s: kind %q", r.Name, r.Auth)
			case r.Upstream == nil || r.Upstream.Host == "" || r.Upstream.User != nil || r.Upstream.RawQuery != "":
				t.Errorf("route %s: upstream %v", r.Name, r.Upstream)
			case r.Upstream.Scheme != "https" && !(r.Upstream.Scheme == "http" && r.AllowInsecureUpstream):
				t.Errorf("route %s: upstream scheme %q", r.Name, r.Upstream.Scheme)
			case !validHeaderName(r.Header) || reservedHeaders[r.Header] || !validHeaderValue(r.HeaderPrefix):
				t.Errorf("route %s: header %q prefix %q", r.Name, r.Header, r.HeaderPrefix)
			case !(r.RefreshAt >= 0.1 && r.RefreshAt <= 0.9) || r.DefaultTTL < 10*time.Second || r.ExchangeTimeout <= 0:
				t.Errorf("route %s: timing %v %v %v", r.Name, r.RefreshAt, r.DefaultTTL, r.ExchangeTimeout)
			}
		}
	})
}
