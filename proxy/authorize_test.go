package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/credproxy/credproxy/internal/logtest"
)

// TestForwardAuthorize: with an Authorize hook, a refused caller gets 407
// with a Basic challenge and nothing reaches the upstream, whether it
// CONNECTs or sends a plain request to a route host; an allowed caller is
// served, and its Proxy-Authorization never travels upstream. The hook
// sees the connection's two ends.
func TestForwardAuthorize(t *testing.T) {
	const key = "one-run-key-5f1c"
	log, logs := logtest.New(t)
	var mu sync.Mutex
	var ends [][2]string
	s := newForwardSetup(t, ForwardOptions{AuthRealm: "test realm", Authorize: func(r *http.Request) error {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		mu.Lock()
		ends = append(ends, [2]string{r.RemoteAddr, local.String()})
		mu.Unlock()
		if _, pass, ok := parseProxyBasic(r); ok && pass == key {
			return nil
		}
		return errors.New("no key")
	}}, log)
	plain := "http://" + s.up.srv.Listener.Addr().String() + "/api/v2/plain"
	secure := s.up.srv.URL + "/api/v2/tls"

	for _, u := range []string{plain, secure} {
		resp, err := s.client().Get(u)
		if err == nil {
			if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") != `Basic realm="test realm"` {
				t.Errorf("%s without the key: %d %q", u, resp.StatusCode, resp.Header.Get("Proxy-Authenticate"))
			}
			resp.Body.Close()
		} else if !strings.Contains(err.Error(), "Proxy Authentication Required") {
			t.Errorf("%s without the key: %v", u, err)
		}
	}
	if n := len(s.up.seen()); n != 0 || s.up.conns.Load() != 0 {
		t.Fatalf("a refused caller reached the upstream: %d requests, %d connections", n, s.up.conns.Load())
	}

	withKey := *s.proxy
	withKey.User = url.UserPassword("credproxy", key)
	c := s.client()
	c.Transport.(*http.Transport).Proxy = http.ProxyURL(&withKey)
	for _, u := range []string{plain, secure} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("%s with the key: %v", u, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the key: %d", u, resp.StatusCode)
		}
	}
	for _, r := range s.up.seen() {
		if r.Header.Get("Proxy-Authorization") != "" {
			t.Errorf("Proxy-Authorization reached the upstream on %s", r.Path)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range ends {
		if e[0] == "" || e[1] != s.srv.Listener.Addr().String() {
			t.Errorf("the hook saw remote %q local %q, want the listener %s", e[0], e[1], s.srv.Listener.Addr())
		}
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), key, fwdToken)
}

// parseProxyBasic reads Proxy-Authorization as Basic credentials.
func parseProxyBasic(r *http.Request) (user, pass string, ok bool) {
	h := r.Header.Get("Proxy-Authorization")
	if h == "" {
		return "", "", false
	}
	rr := &http.Request{Header: http.Header{"Authorization": {h}}}
	return rr.BasicAuth()
}
