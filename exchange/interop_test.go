package exchange

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	oauth2lib "github.com/go-oauth2/oauth2/v4"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
	"golang.org/x/oauth2"

	"github.com/credproxy/credproxy/internal/secret"
)

// The generic OAuth 2.0 kinds against an authorization server this project
// did not write: github.com/go-oauth2/oauth2/v4, on loopback.

const (
	interopClient = "interop-client"
	interopSecret = "interopSecret42"
)

func startInteropServer(t *testing.T) string {
	t.Helper()
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	if err := clients.Set(interopClient, &models.Client{ID: interopClient, Secret: interopSecret, Domain: "http://127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	manager.MapClientStorage(clients)
	manager.SetClientTokenCfg(&manage.Config{AccessTokenExp: 20 * time.Minute})
	manager.SetPasswordTokenCfg(&manage.Config{AccessTokenExp: 20 * time.Minute, RefreshTokenExp: time.Hour, IsGenerateRefresh: true})
	// Refreshing rotates the refresh token and revokes the old one.
	manager.SetRefreshTokenCfg(&manage.RefreshingConfig{IsGenerateRefresh: true, IsRemoveAccess: true, IsRemoveRefreshing: true})
	srv := server.NewDefaultServer(manager)
	srv.SetAllowedGrantType(oauth2lib.ClientCredentials, oauth2lib.Refreshing, oauth2lib.PasswordCredentials)
	srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if id, sec, err := server.ClientBasicHandler(r); err == nil {
			return id, sec, nil
		}
		return server.ClientFormHandler(r)
	})
	srv.SetPasswordAuthorizationHandler(func(_ context.Context, _, user, pass string) (string, error) {
		if user == "svc" && pass == "svc-pass" {
			return "svc", nil
		}
		return "", errors.New("bad user")
	})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.HandleTokenRequest(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL + "/token"
}

func TestInteropClientCredentials(t *testing.T) {
	tokenURL := startInteropServer(t)
	for _, body := range []bool{false, true} {
		src := &OAuth2ClientCredentials{OAuth2Client{TokenURL: tokenURL, ClientID: interopClient,
			ClientSecret: secret.Ref{Value: secret.New(interopSecret)}, AuthStyleBody: body, Scopes: []string{"read"},
			Client: NewHTTPClient(), DefaultTTL: time.Minute}}
		tok, err := src.Fetch(context.Background())
		if err != nil {
			t.Fatalf("body=%v: %v", body, err)
		}
		if d := time.Until(tok.Expiry); d < 19*time.Minute || d > 20*time.Minute {
			t.Errorf("body=%v: lifetime %v, want the server's 20m", body, d)
		}
	}
	bad := &OAuth2ClientCredentials{OAuth2Client{TokenURL: tokenURL, ClientID: interopClient,
		ClientSecret: secret.Ref{Value: secret.New("not-the-secret")}, Client: NewHTTPClient(), DefaultTTL: time.Minute}}
	_, err := bad.Fetch(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != "invalid_client" || !e.Permanent() {
		t.Errorf("bad secret: %#v", err)
	}
}

func TestInteropRefreshTokenRotation(t *testing.T) {
	tokenURL := startInteropServer(t)
	// Obtain a first refresh token with the password grant.
	cfg := oauth2.Config{ClientID: interopClient, ClientSecret: interopSecret, Endpoint: oauth2.Endpoint{TokenURL: tokenURL}}
	first, err := cfg.PasswordCredentialsToken(context.Background(), "svc", "svc-pass")
	if err != nil || first.RefreshToken == "" {
		t.Fatalf("password grant: %v", err)
	}
	src := &OAuth2RefreshToken{
		OAuth2Client: OAuth2Client{TokenURL: tokenURL, ClientID: interopClient, ClientSecret: secret.Ref{Value: secret.New(interopSecret)},
			Client: NewHTTPClient(), DefaultTTL: time.Minute},
		RefreshToken: secret.Ref{Value: secret.New(first.RefreshToken)},
	}
	// The server revokes each refresh token once used: three refreshes
	// in a row work only if the rotated token is used each time.
	for i := range 3 {
		if _, err := src.Fetch(context.Background()); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	// And the original one is dead, as the server says.
	stale := &OAuth2RefreshToken{OAuth2Client: src.OAuth2Client, RefreshToken: secret.Ref{Value: secret.New(first.RefreshToken)}}
	_, err = stale.Fetch(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != "invalid_grant" {
		t.Errorf("reused refresh token: %v", err)
	}
}
