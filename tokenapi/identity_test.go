package tokenapi

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// TestTokenAPIAnswersIdentity: beside the token, the token API answers
// the route's identity fingerprints, by which `credproxy token` decides
// whether this token is its own identity's; a route whose identity
// cannot be computed answers the token without them (so no client takes
// it for its own) and logs why.
func TestTokenAPIAnswersIdentity(t *testing.T) {
	log, logs := logtest.New(t)
	tokens := &fakeTokens{tok: exchange.Token{Value: secret.New(apiTestToken)}}
	adm := newMux(Options{Metrics: NewMetrics(prometheus.NewRegistry()), Logger: log, Routes: []Route{
		{Name: "known", Tokens: tokens, Identity: func() (string, string, error) {
			return "sha256:0123456789abcdef", "pbkdf2-sha256:fedcba9876543210", nil
		}},
		{Name: "unreadable", Tokens: tokens, Identity: func() (string, string, error) {
			return "", "", errors.New("CREDPROXY_TOKEN_FILE: read secret file: permission denied")
		}},
	}})
	srv := httptest.NewServer(adm)
	defer srv.Close()
	tcs := []struct {
		route string
		want  Response
	}{
		{"known", Response{AccessToken: apiTestToken, TokenType: "Bearer",
			Principal: "sha256:0123456789abcdef", Identity: "pbkdf2-sha256:fedcba9876543210"}},
		{"unreadable", Response{AccessToken: apiTestToken, TokenType: "Bearer"}},
	}
	for _, tc := range tcs {
		got := callTokenAPI(t, "GET", srv.URL+"/v1/token/"+tc.route, map[string]string{"Metadata": "true"}, "")
		var tr Response
		if err := json.Unmarshal([]byte(got.body), &tr); err != nil || got.status != 200 {
			t.Fatalf("%s: %d %s %v", tc.route, got.status, got.body, err)
		}
		if diff := cmp.Diff(tc.want, tr); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.route, diff)
		}
	}
	if !strings.Contains(logs.String(), "permission denied") {
		t.Errorf("the unreadable identity is not logged:\n%s", logs.String())
	}
}
