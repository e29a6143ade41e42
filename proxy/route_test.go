package proxy

import (
	"net/url"
	"testing"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// TestAuthorityIsAFixpoint: Route.allows looks a request's host up as it
// is before normalising it, which is right only if every normalised
// authority normalises to itself.
func TestAuthorityIsAFixpoint(t *testing.T) {
	for _, in := range []string{"API.example.com", "api.example.com.", "api.example.com:8443", "127.0.0.1", "[::1]", "[::1]:9443", "Host.Example.:443"} {
		for _, scheme := range []string{"https", "http"} {
			a := Authority(scheme, in)
			for _, s2 := range []string{"https", "http"} {
				if b := Authority(s2, a); b != a {
					t.Errorf("Authority(%q, Authority(%q, %q) = %q) = %q", s2, scheme, in, a, b)
				}
			}
		}
	}
}

func TestRouteAllows(t *testing.T) {
	r := mustRoute(t, RouteOptions{Name: "r", Upstream: &url.URL{Scheme: "https", Host: "API.example.com"}, Hosts: []string{"other.example:8443"},
		Header: "Authorization", Tokens: &fakeTokens{}})
	tcs := []struct {
		desc string
		url  string
		want bool
	}{
		{"upstream as configured", "https://API.example.com/x", true},
		{"upstream normalised", "https://api.example.com:443/x", true},
		{"upstream with a trailing dot", "https://api.example.com./x", true},
		{"extra host", "https://other.example:8443/", true},
		{"extra host, other port", "https://other.example/", false},
		{"plain http to the upstream", "http://api.example.com/x", false},
		{"plain http to a host:443 key", "http://api.example.com:443/x", false},
		{"another host", "https://evil.example/", false},
	}
	for _, tc := range tcs {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.allows(u); got != tc.want {
			t.Errorf("%s: allows(%s) = %v, want %v", tc.desc, tc.url, got, tc.want)
		}
	}
	r.allowInsecure = true
	if u, _ := url.Parse("http://api.example.com:443/x"); !r.allows(u) {
		t.Errorf("with AllowInsecure, http to a route authority is allowed")
	}
}

// TestHeaderValueFollowsTheToken: the cached header value is rebuilt when
// the token changes.
func TestHeaderValueFollowsTheToken(t *testing.T) {
	r := &Route{prefix: "Bearer"}
	for _, tok := range []string{"tok-one", "tok-one", "tok-two", "tok-one"} {
		if got := r.headerValues(exchange.Token{Value: secret.New(tok)}); len(got) != 1 || got[0] != "Bearer "+tok {
			t.Errorf("headerValues(%s) = %q", tok, got)
		}
	}
	bare := &Route{}
	if got := bare.headerValues(exchange.Token{Value: secret.New("tok-bare")}); len(got) != 1 || got[0] != "tok-bare" {
		t.Errorf("bare headerValues = %q", got)
	}
	one := exchange.Token{Value: secret.New("tok-one")}
	if n := testing.AllocsPerRun(100, func() { r.headerValues(one) }); n != 0 {
		t.Errorf("headerValues for the current token allocates %v times", n)
	}
}

// mustRoute is NewRoute for routes a test knows to be valid.
func mustRoute(tb testing.TB, o RouteOptions) *Route {
	tb.Helper()
	r, err := NewRoute(o)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// TestNewRouteRefuses: a route without a name, a header, a token supply
// or anywhere to send the credential is refused.
func TestNewRouteRefuses(t *testing.T) {
	up := &url.URL{Scheme: "https", Host: "api.example.com"}
	ok := RouteOptions{Name: "r", Upstream: up, Header: "Authorization", Tokens: &fakeTokens{}}
	if _, err := NewRoute(ok); err != nil {
		t.Fatalf("NewRoute(%+v) = %v", ok, err)
	}
	for _, tc := range []struct {
		desc string
		edit func(*RouteOptions)
	}{
		{"no name", func(o *RouteOptions) { o.Name = "" }},
		{"no header", func(o *RouteOptions) { o.Header = "" }},
		{"no tokens", func(o *RouteOptions) { o.Tokens = nil }},
		{"no upstream nor hosts", func(o *RouteOptions) { o.Upstream = nil }},
		{"upstream without a host", func(o *RouteOptions) { o.Upstream = &url.URL{Scheme: "https"} }},
	} {
		o := ok
		tc.edit(&o)
		if r, err := NewRoute(o); err == nil {
			t.Errorf("%s: NewRoute = %v, want an error", tc.desc, r)
		}
	}
	o := ok
	o.Upstream, o.Hosts = nil, []string{"other.example"}
	if _, err := NewRoute(o); err != nil {
		t.Errorf("hosts only: NewRoute = %v", err)
	}
}
