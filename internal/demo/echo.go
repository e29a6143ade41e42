package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxEchoBody bounds the request bodies the echo API reads: ample for
// gzip'ed direct-ingestion batches, small enough not to exhaust a test.
const maxEchoBody = 16 << 20

// maxStreamChunks bounds /stream, so that a typo cannot keep a test's
// server busy for hours.
const maxStreamChunks = 100000

// EchoOptions configures the credential check of an Echo.
type EchoOptions struct {
	// Header carries the credential; default Authorization. Use
	// X-SF-Token for Splunk.
	Header string
	// Prefix is expected before the token; default "Bearer ". The check is
	// exact: the header's value must be Prefix + token.
	Prefix string
	// NoPrefix expects the bare token (as in X-SF-Token), since an empty
	// Prefix means the default.
	NoPrefix bool
}

// Echo is a fake observability API (Wavefront-like): it accepts only the
// requests whose credential its valid function approves, answers others
// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (docs/protocols.md
// 1c, 3), and answers the accepted ones with what it received: method,
// path, query, host, headers without the credential, body size, and a
// fingerprint of the token, never the token.
//
// A few paths serve what proxy tests need:
//
//	/stream?chunks=N&interval=D  N lines {"n":i} of NDJSON (default 3),
//	                             each flushed, D (a Go duration) apart
//	/redirect                    302 to /api/v2/target
//	/status/<code>               that status (200-599), a small JSON body (none for 204, 304)
//	/big?bytes=N                 N zero bytes, streamed, never held in memory
//
// for any method; every other path echoes. An Echo is safe for concurrent
// use.
type Echo struct {
	valid  func(token string) bool
	header string // canonical form, to match the keys of http.Header
	prefix string

	requests atomic.Int64
	rejected atomic.Int64

	mu   sync.Mutex // guards last
	last http.Header
}

// NewEcho returns an echo API accepting the tokens valid approves, such as
// CSP.Valid; valid must be safe for concurrent use. It panics if valid is
// nil.
func NewEcho(valid func(token string) bool, opts EchoOptions) *Echo {
	if valid == nil {
		panic("demo: NewEcho: nil valid")
	}
	e := &Echo{valid: valid, header: http.CanonicalHeaderKey(opts.Header), prefix: opts.Prefix}
	if e.header == "" {
		e.header = "Authorization"
	}
	if e.prefix == "" && !opts.NoPrefix {
		e.prefix = "Bearer "
	}
	return e
}

// Requests counts the requests received, rejected ones included.
func (e *Echo) Requests() int { return int(e.requests.Load()) }

// Rejected counts the requests answered 401 for their credential.
func (e *Echo) Rejected() int { return int(e.rejected.Load()) }

// LastHeader returns a copy of the last request's headers, credential
// included, so that tests can assert what the proxy injected; nil before
// the first request.
func (e *Echo) LastHeader() http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last.Clone()
}

// ServeHTTP checks the credential, then serves the request.
func (e *Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	e.mu.Lock()
	e.last = r.Header.Clone()
	e.mu.Unlock()

	tok, ok := e.token(r)
	if !ok {
		e.rejected.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error": "invalid_token", "message": "missing, invalid, expired or revoked token in " + e.header,
		})
		return
	}
	switch p := r.URL.Path; {
	case p == "/stream":
		e.stream(w, r)
	case p == "/redirect":
		// Relative and bodiless, so tests can see whether a proxy
		// rewrites or follows it.
		w.Header().Set("Location", "/api/v2/target")
		w.WriteHeader(http.StatusFound)
	case strings.HasPrefix(p, "/status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(p, "/status/"))
		if err != nil || code < 200 || code > 599 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "status must be 200-599"})
			return
		}
		if code == http.StatusNoContent || code == http.StatusNotModified {
			w.WriteHeader(code) // no body allowed
			return
		}
		writeJSON(w, code, map[string]int{"status": code})
	case p == "/big":
		n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bytes must be a non-negative integer"})
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.CopyN(w, zeros{}, n) // fails only when the client has gone
	default:
		e.echo(w, r, tok)
	}
}

// token returns the credential of r if valid approves it. Exactly one
// credential header is required: a proxy that added its header next to
// the client's instead of replacing it must fail the test, whichever of
// the two the upstream would have read.
func (e *Echo) token(r *http.Request) (string, bool) {
	vs := r.Header.Values(e.header)
	if len(vs) != 1 {
		return "", false
	}
	tok, ok := strings.CutPrefix(vs[0], e.prefix)
	if !ok || tok == "" || !e.valid(tok) {
		return "", false
	}
	return tok, true
}

// echoReply is the answer to an accepted request.
type echoReply struct {
	Method     string `json:"method"`
	Path       string `json:"path"`
	Query      string `json:"query"`
	Host       string `json:"host"`
	Authorized bool   `json:"authorized"`
	// TokenFingerprint identifies the token without revealing it:
	// "sha256:" and the first 4 hex digits of its SHA-256.
	TokenFingerprint string      `json:"token_fingerprint"`
	Headers          http.Header `json:"headers"`
	BodyBytes        int64       `json:"body_bytes"`
}

func (e *Echo) echo(w http.ResponseWriter, r *http.Request, tok string) {
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxEchoBody))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body larger than 16 MiB"})
		return
	}
	if err != nil {
		return // the client has gone
	}
	h := r.Header.Clone()
	h.Del(e.header) // the credential is what the echo must never give back
	sum := sha256.Sum256([]byte(tok))
	writeJSON(w, http.StatusOK, echoReply{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Authorized: true,
		TokenFingerprint: "sha256:" + hex.EncodeToString(sum[:2]), Headers: h, BodyBytes: n,
	})
}

// stream writes NDJSON lines, flushing each so that tests can tell a proxy
// that streams from one that buffers.
func (e *Echo) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	chunks, interval := 3, time.Duration(0)
	var err error
	if s := q.Get("chunks"); s != "" {
		if chunks, err = strconv.Atoi(s); err != nil || chunks < 1 || chunks > maxStreamChunks {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "chunks must be 1-100000"})
			return
		}
	}
	if s := q.Get("interval"); s != "" {
		if interval, err = time.ParseDuration(s); err != nil || interval < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "interval must be a Go duration"})
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	rc := http.NewResponseController(w)
	for i := 1; i <= chunks; i++ {
		if i > 1 && interval > 0 {
			t := time.NewTimer(interval)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if _, err := fmt.Fprintf(w, "{\"n\":%d}\n", i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// writeJSON answers status with v as JSON. v is always encodable here,
// so the error is not checked.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
