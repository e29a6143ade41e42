package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tlsAPI is a TLS test server that counts the connections it accepted and
// closed. It offers HTTP/2 when h2 is set.
type tlsAPI struct {
	srv            *httptest.Server
	opened, closed atomic.Int32
	requests       atomic.Int32
}

func newTLSAPI(t *testing.T, h2 bool, h http.HandlerFunc) *tlsAPI {
	t.Helper()
	a := &tlsAPI{}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		h(w, r)
	}))
	a.srv.EnableHTTP2 = h2
	a.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			a.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			a.closed.Add(1)
		}
	}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

// transport returns the upstream transport trusting the server, closed
// after the test.
func (a *tlsAPI) transport(t *testing.T) *Transport {
	pool := x509.NewCertPool()
	pool.AddCert(a.srv.Certificate())
	tr := NewTransport(pool)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newReq(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// roundTrip sends req and returns the status and the whole body.
func roundTrip(t *testing.T, rt http.RoundTripper, req *http.Request) (int, string) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, string(b)
}

// TestTransportPoolsAndSpeaksTheClientsVersion: a request goes upstream
// in its client's HTTP version, HTTP/2 only where the upstream offers it:
// an HTTP/1.1 client's requests are not multiplexed into one HTTP/2
// connection. Sequential requests share one connection, and bodies pass
// through uncompressed: the client's own Accept-Encoding is all the
// upstream sees.
func TestTransportPoolsAndSpeaksTheClientsVersion(t *testing.T) {
	for _, c := range []struct {
		client   int // the client request's ProtoMajor
		offersH2 bool
		proto    string
	}{
		{1, true, "HTTP/1.1"},
		{1, false, "HTTP/1.1"},
		{2, true, "HTTP/2.0"},
		{2, false, "HTTP/1.1"},
	} {
		t.Run(fmt.Sprintf("client HTTP/%d, upstream h2 %v", c.client, c.offersH2), func(t *testing.T) {
			api := newTLSAPI(t, c.offersH2, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				w.Write([]byte(r.Proto + " " + r.Method + " " + string(body) + " " + r.Header.Get("Accept-Encoding")))
			})
			tr := api.transport(t)
			for range 5 {
				for _, m := range []string{"GET", "POST"} {
					req := newReq(t, m, api.srv.URL, []byte("b"))
					req.ProtoMajor, req.ProtoMinor = c.client, 0
					if c.client == 1 {
						req.ProtoMinor = 1
					}
					status, body := roundTrip(t, tr, req)
					if want := c.proto + " " + m + " b "; status != 200 || body != want {
						t.Fatalf("%s = %d %q, want 200 %q", m, status, body, want)
					}
				}
			}
			if n := api.opened.Load(); n != 1 {
				t.Errorf("the upstream accepted %d connections for 10 sequential requests, want 1", n)
			}
		})
	}
}

// TestTransportVerifiesTLSAndIgnoresEnvironmentProxy: an upstream whose
// certificate is not trusted is refused, and HTTPS_PROXY in credproxy's
// environment (which may point at credproxy itself) is not followed.
func TestTransportVerifiesTLSAndIgnoresEnvironmentProxy(t *testing.T) {
	var proxied atomic.Int32
	proxyLn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		http.Error(w, "proxy", http.StatusBadGateway)
	}))
	t.Cleanup(proxyLn.Close)
	t.Setenv("HTTPS_PROXY", proxyLn.URL)
	t.Setenv("HTTP_PROXY", proxyLn.URL)
	api := newTLSAPI(t, false, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("direct")) })

	if _, body := roundTrip(t, api.transport(t), newReq(t, "GET", api.srv.URL, nil)); body != "direct" || proxied.Load() != 0 {
		t.Errorf("answer %q, %d requests through HTTPS_PROXY; want a direct call", body, proxied.Load())
	}
	untrusting := NewTransport(nil)
	t.Cleanup(untrusting.CloseIdleConnections)
	resp, err := untrusting.RoundTrip(newReq(t, "GET", api.srv.URL, nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("an upstream with an untrusted certificate was accepted")
	}
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Errorf("error = %v, want an unknown-authority error", err)
	}
}

// TestTransportCancelReachesTheUpstream: cancelling a request's context
// ends RoundTrip with context.Canceled and cancels the upstream's request.
// Each step waits for the event that ends it, not for a duration, so that
// the test holds on a loaded machine (a 5 s bound failed at load 18);
// hangBound only turns a hang into a failure that names the step.
func TestTransportCancelReachesTheUpstream(t *testing.T) {
	const hangBound = 2 * time.Minute
	arrived, released := make(chan struct{}), make(chan struct{})
	testDone := make(chan struct{})
	// Once each: a retried request must not panic the handler.
	arrive, release := sync.OnceFunc(func() { close(arrived) }), sync.OnceFunc(func() { close(released) })
	api := newTLSAPI(t, false, func(w http.ResponseWriter, r *http.Request) {
		arrive()
		select {
		case <-r.Context().Done():
			release()
		case <-testDone: // the test failed: let the server close
		}
	})
	t.Cleanup(func() { close(testDone) }) // runs before the server's Close
	tr := api.transport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req := newReq(t, "GET", api.srv.URL, nil).WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-arrived:
	case err := <-errc:
		t.Fatalf("RoundTrip returned before the upstream had the request: %v", err)
	case <-time.After(hangBound):
		t.Fatal("the request never reached the upstream")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	case <-time.After(hangBound):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
	select {
	case <-released:
	case <-time.After(hangBound):
		t.Fatal("the upstream's request was not cancelled")
	}
}

func TestTransportBoundsResponseHeaders(t *testing.T) {
	api := newTLSAPI(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("a", 2<<20))
	})
	tr := api.transport(t)
	resp, err := tr.RoundTrip(newReq(t, "GET", api.srv.URL, nil))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a 2 MiB header passed the limit of %d bytes", maxUpstreamHeaderBytes)
	}
	if !strings.Contains(err.Error(), "exceeded") {
		t.Errorf("error = %v, want one saying the headers exceeded the limit", err)
	}
}
