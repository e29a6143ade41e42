package execrun

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"

	"github.com/credproxy/credproxy/internal/peeruid"
)

// realm is the realm of the 407 challenge of exec's proxy.
const realm = "credproxy exec"

// execProxyUser is the user name in the proxy URL exec gives its
// command; only the password (the key) is checked.
const execProxyUser = "credproxy"

// execGuard decides who may use exec's forward proxy: its own user, as
// the kernel tells (internal/peeruid), or whoever sends the one-run key
// that exec puts in its command's proxy variables. Another local user
// can reach a loopback port too; without the guard it could spend the
// credential (a plain http:// request to a route host needs not even the
// CA). The uid check is for clients that cannot send proxy credentials
// on a CONNECT (Java's HttpURLConnection); the key is for the others,
// and for where the uid cannot be found (it fails closed: key required).
//
// The key is held behind a pointer so that printing an execGuard by
// mistake shows an address, not the key; it never goes into a log or an
// error.
type execGuard struct {
	uid uint32
	key *[]byte
	// lookup finds the uid that owns a connection's client socket;
	// peeruid.TCP outside tests.
	lookup func(local, remote net.Addr) (uint32, error)
}

// newExecGuard makes a fresh random key for this run of exec, serving
// the user that runs it.
func newExecGuard() (*execGuard, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("exec: proxy key: %w", err)
	}
	key := []byte(base64.RawURLEncoding.EncodeToString(b))
	return &execGuard{uid: uint32(os.Getuid()), key: &key, lookup: peeruid.TCP}, nil
}

// proxyURL is the proxy URL for the command: addr with the key as
// userinfo, which curl, Python requests, Go and Node send as
// Proxy-Authorization: Basic on CONNECT and absolute-form requests.
func (g *execGuard) proxyURL(addr string) string {
	u := url.URL{Scheme: "http", User: url.UserPassword(execProxyUser, string(*g.key)), Host: addr}
	return u.String()
}

// errNoKey is the refusal when the uid could not be found.
var errNoKey = errors.New("no valid proxy key, and the caller's uid is unknown")

// authorize is proxy.ForwardOptions.Authorize for exec: the key, compared
// in constant time, or the caller's socket owned by exec's uid.
func (g *execGuard) authorize(r *http.Request) error {
	if h := r.Header.Get("Proxy-Authorization"); h != "" {
		basic := http.Request{Header: http.Header{"Authorization": {h}}}
		if _, pass, ok := basic.BasicAuth(); ok && subtle.ConstantTimeCompare([]byte(pass), *g.key) == 1 {
			return nil
		}
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if local == nil || err != nil {
		return errNoKey
	}
	uid, err := g.lookup(local, net.TCPAddrFromAddrPort(remote))
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", errNoKey, err)
	case uid != g.uid:
		return fmt.Errorf("no valid proxy key, and the caller runs as uid %d, not exec's %d", uid, g.uid)
	}
	return nil
}
