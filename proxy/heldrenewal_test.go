package proxy

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// heldTokens is a Tokens whose renewals are held back, as a cache's are
// for a path that refuses every token: Invalidate gives the rejected
// token back. It counts Succeeded calls.
type heldTokens struct {
	tok         atomic.Pointer[exchange.Token]
	invalidated atomic.Int32
	succeeded   atomic.Int32
}

func (h *heldTokens) Token(context.Context) (exchange.Token, error) { return *h.tok.Load(), nil }
func (h *heldTokens) Invalidate(_ context.Context, rejected exchange.Token) (exchange.Token, error) {
	h.invalidated.Add(1)
	return rejected, nil
}
func (h *heldTokens) Succeeded() { h.succeeded.Add(1) }

// TestHeldRenewalPassesThe401Back: when Invalidate gives the rejected
// token back (renewals held back), the request is not replayed: the 401
// goes to the client after one upstream request. An answer other than
// 401 is reported with Succeeded, a 401 is not.
func TestHeldRenewalPassesThe401Back(t *testing.T) {
	log, _ := logtest.New(t)
	up := newUpstream(t, "good")
	tokens := &heldTokens{}
	tokens.tok.Store(&exchange.Token{Value: secret.New("refused")})
	px, _ := startReverse(t, up, tokens, log)
	get := func() int {
		resp, err := http.Get(px.URL + "/api/x")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(); st != http.StatusUnauthorized || len(up.seen()) != 1 || tokens.invalidated.Load() != 1 || tokens.succeeded.Load() != 0 {
		t.Errorf("status %d after %d upstream requests, %d Invalidate, %d Succeeded; want 401 after 1, 1, 0",
			st, len(up.seen()), tokens.invalidated.Load(), tokens.succeeded.Load())
	}
	tokens.tok.Store(&exchange.Token{Value: secret.New("good")})
	if st := get(); st != http.StatusOK || tokens.succeeded.Load() != 1 {
		t.Errorf("status %d, %d Succeeded; want 200 and 1", st, tokens.succeeded.Load())
	}
}
