// Command gofloor is the Go floor of the bench: the least a Go sidecar
// that injects a credential can be, an httputil.ReverseProxy that sets a
// fixed Authorization header on every request and forwards it to one TLS
// upstream, with net/http's defaults everywhere else. It is the shape of
// Vault Proxy's API proxy and of most Go sidecars: no token exchange, no
// header hygiene, no answer scan, no browser guard, no metrics, no
// timeouts beyond ReadHeaderTimeout. go run ./bench builds and runs it
// beside nginx and HAProxy, so results.md shows where credproxy stands
// among Go proxies too.
//
//	gofloor -listen 127.0.0.1:8081 -upstream https://api.example.com [-http1]
//
// The token is read from GOFLOOR_TOKEN (sent as "Bearer <token>"); the
// upstream's CA from the system pool, which SSL_CERT_FILE can replace.
// Without -http1 the transport is a clone of http.DefaultTransport:
// HTTP/2 when the upstream offers it (one multiplexed connection), as a
// Go client gets by default; with -http1 it speaks HTTP/1.1 over a pool
// of connections (MaxIdleConns 1024 and MaxIdleConnsPerHost 256 in both
// cases, as credproxy's pool, so that it holds a connection per client
// connection, as nginx's keepalive 256 does).
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	upstream := flag.String("upstream", "", "https:// base URL to forward to")
	http1 := flag.Bool("http1", false, "speak HTTP/1.1 to the upstream even when it offers HTTP/2")
	flag.Parse()
	if err := run(*listen, *upstream, os.Getenv("GOFLOOR_TOKEN"), *http1); err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
}

func run(listen, upstream, token string, http1 bool) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("-upstream %q: want an https:// URL", upstream)
	}
	if token == "" {
		return errors.New("GOFLOOR_TOKEN is empty")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// DefaultTransport keeps 100 idle connections in all and 2 per host:
	// at 256 client connections over HTTP/1.1 that would be a TLS
	// handshake for most requests, so the pool is sized as credproxy's
	// and nginx's are.
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 256
	if http1 {
		// net/http's documented way to turn HTTP/2 off in a client;
		// the cloned TLS configuration offers h2 in ALPN (Clone sets
		// DefaultTransport's HTTP/2 up first), so it is replaced too.
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		tr.TLSClientConfig = &tls.Config{NextProtos: []string{"http/1.1"}}
	}
	auth := "Bearer " + token
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Header.Set("Authorization", auth)
		},
		Transport: tr,
	}
	srv := &http.Server{Addr: listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("gofloor: %s -> %s (http1 only: %v)", listen, u, http1)
	return srv.ListenAndServe()
}
