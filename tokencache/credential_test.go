package tokencache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// TestCredentialNewsReported: what an exchange learnt of the credential
// (exchange.Token.Credential) reaches OnExchange with that exchange, also
// when the token itself is refused (expired on arrival: the refresh
// token rotated all the same), and the tokens served carry none.
func TestCredentialNewsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rotated := &exchange.CredentialNews{Rotated: &exchange.Rotation{WrittenBack: true}}
		expiring := &exchange.CredentialNews{ExpiryReported: true, ExpiresAt: time.Now().Add(30 * 24 * time.Hour)}
		writeFailed := &exchange.CredentialNews{Rotated: &exchange.Rotation{Err: errors.New("open /run/rt: read-only file system")}}
		answers := []exchange.Token{
			{Value: secret.New("news-1"), Expiry: time.Now().Add(time.Hour), Credential: rotated},
			{Value: secret.New("news-2"), Expiry: time.Now().Add(-time.Second), Credential: writeFailed}, // expired on arrival
			{Value: secret.New("news-3"), Expiry: time.Now().Add(time.Hour), Credential: expiring},
			{Value: secret.New("news-4"), Expiry: time.Now().Add(time.Hour)},
		}
		var mu sync.Mutex
		n := 0
		src := exchange.SourceFunc(func(context.Context) (exchange.Token, error) {
			mu.Lock()
			defer mu.Unlock()
			tok := answers[min(n, len(answers)-1)]
			n++
			return tok, nil
		})
		var got []Exchange
		c := start(t, src, Options{Route: "r", Rand: constRand(0.5), OnExchange: func(e Exchange) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e)
		}})
		if tok := mustToken(t, c); tok.Credential != nil {
			t.Errorf("the token served carries %+v", tok.Credential)
		}
		// A reload gets news-2, refused; the retry gets news-3; a second
		// reload gets news-4.
		if _, err := c.Renew(context.Background()); !errors.Is(err, errExpiredOnArrival) {
			t.Fatalf("the reload that gets an expired token: %v", err)
		}
		time.Sleep(2 * time.Minute)
		if _, err := c.Renew(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 4 {
			t.Fatalf("%d exchanges reported, want 4", len(got))
		}
		for i, want := range []*exchange.CredentialNews{rotated, writeFailed, expiring, nil} {
			if got[i].Credential != want {
				t.Errorf("exchange %d (%s): Credential %+v, want %+v", i+1, got[i].Result, got[i].Credential, want)
			}
		}
		if got[1].Result == "ok" {
			t.Errorf("the expired token's exchange: %q", got[1].Result)
		}
		if tok := mustToken(t, c); tok.Value.Reveal() != "news-4" || tok.Credential != nil {
			t.Errorf("token served %q with %+v", tok.Value.Reveal(), tok.Credential)
		}
	})
}
