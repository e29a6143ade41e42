package execrun

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestExecGuardAuthorize: exec's rule, with the uid lookup faked: the key
// (in Basic proxy credentials) or exec's own uid lets a caller in;
// anything else is refused, and a lookup that fails refuses unless the
// key is there (fail closed). No refusal quotes the key.
func TestExecGuardAuthorize(t *testing.T) {
	g, err := newExecGuard()
	if err != nil {
		t.Fatal(err)
	}
	key := string(*g.key)
	tcs := []struct {
		desc    string
		creds   *url.Userinfo
		uid     uint32
		lookErr error
		ok      bool
	}{
		{desc: "key, other uid", creds: url.UserPassword("credproxy", key), uid: g.uid + 1, ok: true},
		{desc: "key, uid unknown", creds: url.UserPassword("anyone", key), lookErr: errors.New("not found"), ok: true},
		{desc: "no key, own uid", uid: g.uid, ok: true},
		{desc: "no key, other uid", uid: g.uid + 1},
		{desc: "no key, uid unknown", lookErr: errors.New("not found")},
		{desc: "wrong key, other uid", creds: url.UserPassword("credproxy", key+"x"), uid: g.uid + 1},
		{desc: "key as user name, other uid", creds: url.User(key), uid: g.uid + 1},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			g.lookup = func(local, remote net.Addr) (uint32, error) {
				if local.String() != "127.0.0.1:3128" || remote.String() != "127.0.0.1:50000" {
					t.Errorf("asked about %v -> %v", remote, local)
				}
				return tc.uid, tc.lookErr
			}
			r, _ := http.NewRequest(http.MethodConnect, "", nil)
			r.Host, r.RemoteAddr = "api.example.com:443", "127.0.0.1:50000"
			r = r.WithContext(contextWithLocal(r, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3128}))
			if tc.creds != nil {
				pass, _ := tc.creds.Password()
				rr := &http.Request{Header: http.Header{}}
				rr.SetBasicAuth(tc.creds.Username(), pass)
				r.Header.Set("Proxy-Authorization", rr.Header.Get("Authorization"))
			}
			err := g.authorize(r)
			if (err == nil) != tc.ok {
				t.Errorf("authorize: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Error("the refusal quotes the key")
			}
		})
	}
}

// contextWithLocal is r's context with the listener address net/http
// gives a server's requests.
func contextWithLocal(r *http.Request, local net.Addr) context.Context {
	return context.WithValue(r.Context(), http.LocalAddrContextKey, local)
}
