package config

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// twoRoutes is routes a and b, static tokens, each on its own listener,
// with the forward proxy on.
var twoRoutes = map[string]string{
	"CREDPROXY_ROUTES": "a,b", "CREDPROXY_FORWARD_ADDR": "127.0.0.1:0",
	"CREDPROXY_A_AUTH": "static", "CREDPROXY_A_TOKEN_FILE": "/run/a", "CREDPROXY_A_LISTEN": "127.0.0.1:0",
	"CREDPROXY_A_UPSTREAM": "https://api.example.com",
	"CREDPROXY_B_AUTH":     "static", "CREDPROXY_B_TOKEN_FILE": "/run/b", "CREDPROXY_B_LISTEN": "127.0.0.1:0",
	"CREDPROXY_B_UPSTREAM": "https://other.example.com",
}

// TestSharedHosts: with the forward proxy on, a host claimed by two
// routes (UPSTREAM or HOSTS, compared as the forward proxy looks hosts
// up: case, default port, trailing dot) is a problem naming both routes;
// without it, routes may share an upstream on their own listeners.
func TestSharedHosts(t *testing.T) {
	const why = "; the forward proxy must know which credential a host gets"
	tcs := []struct {
		desc string
		env  map[string]string
		want []string // problems, "VAR: message"; nil means Load succeeds
	}{
		{desc: "distinct hosts", env: twoRoutes},
		{desc: "one upstream, forward proxy on",
			env:  with(twoRoutes, "CREDPROXY_B_UPSTREAM", "https://api.example.com/v2"),
			want: []string{"CREDPROXY_B_UPSTREAM: api.example.com:443 is also claimed by route a (CREDPROXY_A_UPSTREAM)" + why}},
		{desc: "one upstream, forward proxy off",
			env: with(twoRoutes, "CREDPROXY_B_UPSTREAM", "https://api.example.com/v2", "CREDPROXY_FORWARD_ADDR", unset)},
		{desc: "HOSTS spells the other's upstream differently",
			env:  with(twoRoutes, "CREDPROXY_B_HOSTS", "API.Example.com.:443"),
			want: []string{"CREDPROXY_B_HOSTS: api.example.com:443 is also claimed by route a (CREDPROXY_A_UPSTREAM)" + why}},
		{desc: "UPSTREAM with the default port against HOSTS without",
			env:  with(twoRoutes, "CREDPROXY_A_HOSTS", "other.example.com", "CREDPROXY_B_UPSTREAM", "https://OTHER.example.com:443"),
			want: []string{"CREDPROXY_B_UPSTREAM: other.example.com:443 is also claimed by route a (CREDPROXY_A_HOSTS)" + why}},
		{desc: "HOSTS in both",
			env:  with(twoRoutes, "CREDPROXY_A_HOSTS", "stream.example.com", "CREDPROXY_B_HOSTS", "x.example.com,Stream.Example.com"),
			want: []string{"CREDPROXY_B_HOSTS: stream.example.com:443 is also claimed by route a (CREDPROXY_A_HOSTS)" + why}},
		{desc: "another port is another host",
			env: with(twoRoutes, "CREDPROXY_B_UPSTREAM", "https://api.example.com:8443")},
		{desc: "a route may name its own upstream in HOSTS",
			env: with(twoRoutes, "CREDPROXY_A_HOSTS", "api.example.com:443,API.example.com")},
		{desc: "claimed twice by the later route: one problem",
			env:  with(twoRoutes, "CREDPROXY_B_UPSTREAM", "https://api.example.com", "CREDPROXY_B_HOSTS", "api.example.com"),
			want: []string{"CREDPROXY_B_UPSTREAM: api.example.com:443 is also claimed by route a (CREDPROXY_A_UPSTREAM)" + why}},
		{desc: "three routes on one host name the first",
			env: with(twoRoutes, "CREDPROXY_ROUTES", "a,b,c", "CREDPROXY_B_UPSTREAM", "https://api.example.com",
				"CREDPROXY_C_AUTH", "static", "CREDPROXY_C_TOKEN_FILE", "/run/c", "CREDPROXY_C_UPSTREAM", "https://x.example.com",
				"CREDPROXY_C_HOSTS", "api.example.com"),
			want: []string{
				"CREDPROXY_B_UPSTREAM: api.example.com:443 is also claimed by route a (CREDPROXY_A_UPSTREAM)" + why,
				"CREDPROXY_C_HOSTS: api.example.com:443 is also claimed by route a (CREDPROXY_A_UPSTREAM)" + why,
			}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Load(tc.env)
			var got []string
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					got = append(got, p.Var+": "+p.Msg)
				}
			} else if err != nil {
				t.Fatalf("err = %v, want nil or *Error", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
