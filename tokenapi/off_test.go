package tokenapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/credproxy/credproxy/internal/jsonerror"
)

// TestSwitchedOffNamesTheVariable: with CREDPROXY_TOKEN_API off, both
// endpoints answer 404 with the JSON error body naming the variable
// that turns them on, whatever the method (Prometheus's oauth2 client
// showed a bare "404 page not found").
func TestSwitchedOffNamesTheVariable(t *testing.T) {
	for _, tc := range []struct{ method, path string }{
		{"GET", TokenPath + "default"},
		{"GET", TokenPath},
		{"POST", OAuth2TokenPath},
		{"GET", OAuth2TokenPath},
	} {
		rec := httptest.NewRecorder()
		SwitchedOff().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		var body jsonerror.Body
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("%s %s: not the JSON error body: %v %q", tc.method, tc.path, err, rec.Body)
			continue
		}
		if rec.Code != http.StatusNotFound || body.Error != "endpoint_off" || !strings.Contains(body.Detail, "CREDPROXY_TOKEN_API=true") ||
			rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: %d %v %+v", tc.method, tc.path, rec.Code, rec.Header(), body)
		}
	}
}
