// Package jsonerror writes the JSON error body of every answer credproxy
// itself gives, on the proxy listeners and the admin listener alike:
// {"error":"<code>","route":"<route>","detail":"<what happened>"}.
package jsonerror

import (
	"encoding/json"
	"net/http"
)

// Body is an error answer. Detail never holds a secret: callers pass
// errors already scrubbed (exchange's redaction, fingerprints).
type Body struct {
	Error  string `json:"error"`
	Route  string `json:"route"`
	Detail string `json:"detail"`
}

// Write answers status with body, not cached.
func Write(w http.ResponseWriter, status int, body Body) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
