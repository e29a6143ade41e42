package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/mitm"
)

// lifecycleForward builds a forward proxy for one route, inside the
// caller's synctest bubble.
func lifecycleForward(t *testing.T, opts ForwardOptions) *Forward {
	t.Helper()
	ca, err := mitm.NewCA("credproxy lifecycle CA")
	if err != nil {
		t.Fatal(err)
	}
	opts.CA = ca
	route := mustRoute(t, RouteOptions{Name: "api", Upstream: &url.URL{Scheme: "https", Host: "api.example.com"}, Header: "Authorization", Prefix: "Bearer",
		Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("lifecycle-tok")}}})
	return NewForward([]*Route{route}, NewTransport(nil), NewMetrics(prometheus.NewRegistry()), opts, zap.NewNop())
}

// TestForwardNewStartsNothing: a Forward built and dropped (a later bind
// failed, say) leaves no goroutine behind. synctest.Test fails when a
// goroutine started in its bubble is still blocked once the function
// returns.
func TestForwardNewStartsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_ = lifecycleForward(t, ForwardOptions{})
	})
}

// TestForwardLifecycle: Serve serves; Shutdown ends it with
// http.ErrServerClosed, may be called twice, and leaves no goroutine once
// Wait returns; Serve after Shutdown, or a second Serve, starts nothing.
func TestForwardLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var guarded bool
		f := lifecycleForward(t, ForwardOptions{DenyOthers: true, ListenerGuard: func(_ net.Listener, next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { guarded = true; next.ServeHTTP(w, r) })
		}})
		ln := newConnQueue() // in memory: its waits are ones synctest sees
		served := make(chan error, 1)
		go func() { served <- f.Serve(ln) }()

		client, server := net.Pipe()
		go ln.push(server)
		req, _ := http.NewRequest("GET", "http://other.example/x", nil)
		if err := req.WriteProxy(client); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(client), req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		client.Close()
		if resp.StatusCode != http.StatusForbidden || !guarded {
			t.Errorf("request to a host of no route: %d, ListenerGuard called %v; want 403 through the guard", resp.StatusCode, guarded)
		}
		if err := f.Serve(newConnQueue()); !errors.Is(err, errServedTwice) {
			t.Errorf("second Serve = %v, want errServedTwice", err)
		}

		for i := range 2 {
			if err := f.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown #%d = %v", i+1, err)
			}
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
		f.Wait()
		if err := f.Serve(newConnQueue()); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve after Shutdown = %v, want http.ErrServerClosed", err)
		}
	})
}

// TestForwardShutdownNeverServed: Shutdown, Close and Wait on a Forward
// that never served return at once.
func TestForwardShutdownNeverServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := lifecycleForward(t, ForwardOptions{})
		if err := f.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		f.Wait()
	})
}
