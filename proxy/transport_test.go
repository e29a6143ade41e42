package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
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

// tlsAPI is a TLS test server offering HTTP/2 and HTTP/1.1 that counts the
// connections it accepted and closed.
type tlsAPI struct {
	srv            *httptest.Server
	opened, closed atomic.Int32
	requests       atomic.Int32
}

func newTLSAPI(t *testing.T, h http.HandlerFunc) *tlsAPI {
	t.Helper()
	a := &tlsAPI{}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		h(w, r)
	}))
	a.srv.EnableHTTP2 = true
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

// transport returns an Upstream trusting the server, closed after the test.
func (a *tlsAPI) transport(t *testing.T) *Upstream {
	u := NewUpstreamTransport()
	pool := x509.NewCertPool()
	pool.AddCert(a.srv.Certificate())
	u.TLSClientConfig.RootCAs = pool
	t.Cleanup(u.CloseIdleConnections)
	return u
}

func newReq(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body) // NewRequest sets GetBody: the body is in memory
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

func TestUpstreamKeepsOneHTTP1ConnectionForSequentialRequests(t *testing.T) {
	var protos sync.Map
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			w.Write([]byte("part one,"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		default:
			w.Write(append([]byte(r.Method+" "), body...))
		}
	})
	u := api.transport(t)
	cases := []struct {
		method, path string
		body         []byte
		status       int
		want         string
	}{
		{"GET", "/", nil, 200, "GET "},
		{"POST", "/", []byte(`{"metric":1}`), 200, `POST {"metric":1}`},
		{"HEAD", "/", nil, 200, ""},
		{"GET", "/empty", nil, 204, ""},
		{"GET", "/chunked", nil, 200, "part one,part two"},
		{"PUT", "/", []byte{}, 200, "PUT "},
	}
	for range 3 {
		for _, c := range cases {
			status, body := roundTrip(t, u, newReq(t, c.method, api.srv.URL+c.path, c.body))
			if status != c.status || body != c.want {
				t.Errorf("%s %s = %d %q, want %d %q", c.method, c.path, status, body, c.status, c.want)
			}
		}
	}
	if n := api.opened.Load(); n != 1 {
		t.Errorf("the upstream accepted %d connections for %d sequential requests, want 1", n, api.requests.Load())
	}
	protos.Range(func(k, _ any) bool {
		if k != "HTTP/1.1" {
			t.Errorf("the upstream saw %v; the fast path speaks HTTP/1.1", k)
		}
		return true
	})
}

func TestUpstreamLeavesStreamsUpgradesAndExpectToNetHTTP(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(r.Proto))
	})
	u := api.transport(t)

	streamed := newReq(t, "POST", api.srv.URL, nil)
	streamed.Body = io.NopCloser(strings.NewReader("a body of unknown length"))
	streamed.ContentLength = -1
	expect := newReq(t, "POST", api.srv.URL, []byte("data"))
	expect.Header.Set("Expect", "100-continue")
	fast := newReq(t, "GET", api.srv.URL, nil)

	for _, c := range []struct {
		name string
		req  *http.Request
		want string
	}{
		{"streamed body", streamed, "HTTP/2.0"},
		{"Expect: 100-continue", expect, "HTTP/2.0"},
		{"plain GET", fast, "HTTP/1.1"},
	} {
		if _, proto := roundTrip(t, u, c.req); proto != c.want {
			t.Errorf("%s went as %s, want %s", c.name, proto, c.want)
		}
	}
}

func TestUpstreamDoesNotReuseAConnectionTheUpstreamClosed(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})
	u := api.transport(t)
	roundTrip(t, u, newReq(t, "GET", api.srv.URL, nil))
	// The upstream drops its idle connection, as at the end of its
	// keep-alive timeout.
	api.srv.CloseClientConnections()
	waitFor(t, func() bool { return api.closed.Load() == 1 }, "the upstream to close the connection")

	// A POST must not be sent on the dead connection: it could not be
	// sent again.
	status, body := roundTrip(t, u, newReq(t, "POST", api.srv.URL, []byte("once")))
	if status != 200 || body != "ok" {
		t.Fatalf("POST after the upstream closed the idle connection = %d %q", status, body)
	}
	if n := api.opened.Load(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
	if n := api.requests.Load(); n != 2 {
		t.Errorf("the upstream saw %d requests, want 2 (the POST once)", n)
	}
}

// TestUpstreamConnectionDroppedWithoutAnswer covers the race the check
// before reuse cannot close: the upstream takes the request and closes
// the connection without a byte of answer.
func TestUpstreamConnectionDroppedWithoutAnswer(t *testing.T) {
	for _, c := range []struct {
		method   string
		header   string
		retried  bool
		requests int32
	}{
		{"GET", "", true, 3},
		{"POST", "", false, 2},
		{"POST", "Idempotency-Key", true, 3},
	} {
		t.Run(c.method+c.header, func(t *testing.T) {
			var seen atomic.Int32
			api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
				n := seen.Add(1)
				io.Copy(io.Discard, r.Body)
				if n == 2 {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				w.Write([]byte("ok"))
			})
			u := api.transport(t)
			roundTrip(t, u, newReq(t, "GET", api.srv.URL, nil))

			req := newReq(t, c.method, api.srv.URL, []byte("payload"))
			if c.header != "" {
				req.Header.Set(c.header, "k-1")
			}
			resp, err := u.RoundTrip(req)
			if c.retried {
				if err != nil {
					t.Fatalf("%s was not sent again on a new connection: %v", c.method, err)
				}
				resp.Body.Close()
			} else {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("a POST was sent twice")
				}
				if !errors.Is(err, errNoAnswer) {
					t.Errorf("error = %v, want one saying the upstream closed the connection without answering", err)
				}
			}
			if n := api.requests.Load(); n != c.requests {
				t.Errorf("the upstream saw %d requests, want %d", n, c.requests)
			}
		})
	}
}

func TestUpstreamCancelClosesTheConnection(t *testing.T) {
	released := make(chan struct{})
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(released)
		case <-time.After(10 * time.Second):
		}
	})
	u := api.transport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req := newReq(t, "GET", api.srv.URL, nil).WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		resp, err := u.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, func() bool { return api.requests.Load() == 1 }, "the request to arrive")
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream's request was not cancelled")
	}
}

func TestUpstreamBoundsResponseHeaders(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("a", 64<<10))
	})
	u := api.transport(t)
	u.MaxResponseHeaderBytes = 8 << 10
	resp, err := u.RoundTrip(newReq(t, "GET", api.srv.URL, nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("a 64 KiB header passed a limit of 8 KiB")
	}
	if !strings.Contains(err.Error(), "exceed 8192 bytes") {
		t.Errorf("error = %v, want it to name the limit", err)
	}
}

func TestUpstreamSkipsInformationalAnswers(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Write([]byte("final"))
	})
	u := api.transport(t)
	for range 2 {
		if status, body := roundTrip(t, u, newReq(t, "GET", api.srv.URL, nil)); status != 200 || body != "final" {
			t.Fatalf("got %d %q, want 200 %q", status, body, "final")
		}
	}
	if n := api.opened.Load(); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
}

func TestUpstreamClosesAConnectionWhoseBodyWasNotRead(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	})
	u := api.transport(t)
	resp, err := u.RoundTrip(newReq(t, "GET", api.srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, resp.Body, 10)
	resp.Body.Close()
	waitFor(t, func() bool { return api.closed.Load() == 1 }, "the half-read connection to be closed")
	if _, body := roundTrip(t, u, newReq(t, "GET", api.srv.URL, nil)); len(body) != 1<<20 {
		t.Errorf("second body has %d bytes", len(body))
	}
	if n := api.opened.Load(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestUpstreamDoesNotReuseAConnectionEndedByClose(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/raw" {
			// A body delimited by the end of the connection.
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
			buf.Flush()
			conn.Close()
			return
		}
		w.Header().Set("Connection", "close")
		w.Write([]byte("last"))
	})
	u := api.transport(t)
	for _, path := range []string{"/raw", "/close", "/raw"} {
		status, _ := roundTrip(t, u, newReq(t, "GET", api.srv.URL+path, nil))
		if status != 200 {
			t.Fatalf("%s: status %d", path, status)
		}
	}
	if n := api.opened.Load(); n != 3 {
		t.Errorf("connections = %d, want 3 (none reusable)", n)
	}
}

func TestUpstreamClosesIdleConnectionsAfterTheirTimeout(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	u := api.transport(t)
	u.IdleConnTimeout = 50 * time.Millisecond
	roundTrip(t, u, newReq(t, "GET", api.srv.URL, nil))
	waitFor(t, func() bool { return api.closed.Load() == 1 }, "the idle connection to be closed")
	u.mu.Lock()
	idle := u.nIdle
	u.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d connections still in the pool", idle)
	}
}

func TestUpstreamKeepsAtMostMaxIdleConnsPerHost(t *testing.T) {
	const n = 8
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Write([]byte("ok"))
	})
	u := api.transport(t)
	u.MaxIdleConnsPerHost = 2
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { roundTrip(t, u, newReq(t, "GET", api.srv.URL, nil)) })
	}
	for range n {
		<-arrived
	}
	close(release)
	wg.Wait()
	waitFor(t, func() bool { return api.closed.Load() == n-2 }, "the surplus connections to be closed")
	u.mu.Lock()
	idle := u.nIdle
	u.mu.Unlock()
	if idle != 2 {
		t.Errorf("idle connections = %d, want 2", idle)
	}
	u.CloseIdleConnections()
	waitFor(t, func() bool { return api.closed.Load() == n }, "CloseIdleConnections to close the rest")
}

func TestUpstreamReadsAnEarlyAnswerToALargeBody(t *testing.T) {
	api := newTLSAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
	u := api.transport(t)
	status, body := roundTrip(t, u, newReq(t, "POST", api.srv.URL, bytes.Repeat([]byte("m"), MaxReplayBody)))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large") {
		t.Errorf("got %d %q, want the upstream's 413", status, body)
	}
}
