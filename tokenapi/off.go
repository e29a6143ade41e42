package tokenapi

import (
	"net/http"
)

// SwitchedOff returns what the admin listener mounts at TokenPath and
// OAuth2TokenPath while CREDPROXY_TOKEN_API is off: whatever the method
// or route, 404 with the JSON error body naming the variable that turns
// the endpoints on. A client configured for them (Prometheus's oauth2,
// `curl`) then says what to do instead of a bare "404 page not found".
// It hands out nothing and reads nothing of the request.
func SwitchedOff() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, errorBody{Error: "endpoint_off",
			Detail: "the token API is off: set CREDPROXY_TOKEN_API=true to serve GET " + TokenPath + "<route> and POST " + OAuth2TokenPath})
	})
}
