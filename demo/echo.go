package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxEchoBody bounds the bodies the echo API reads.
const maxEchoBody = 16 << 20

// EchoOptions configures the echo API's credential check.
type EchoOptions struct {
	// Header carries the credential; default Authorization.
	Header string
	// Prefix is expected before the token; default "Bearer ". Set
	// NoPrefix for a bare token (X-SF-Token).
	Prefix   string
	NoPrefix bool
}

// Echo is a fake observability API: it accepts only requests whose
// credential valid approves, and answers with what it received (the
// credential itself only as a fingerprint). Safe for concurrent use.
type Echo struct {
	valid    func(token string) bool
	header   string
	prefix   string
	requests atomic.Int64
	rejected atomic.Int64

	mu   sync.Mutex
	last http.Header
}

// NewEcho returns an echo API that accepts the tokens valid approves.
func NewEcho(valid func(token string) bool, opts EchoOptions) *Echo {
	e := &Echo{valid: valid, header: opts.Header, prefix: opts.Prefix}
	if e.header == "" {
		e.header = "Authorization"
	}
	if e.prefix == "" && !opts.NoPrefix {
		e.prefix = "Bearer "
	}
	return e
}

// Requests counts requests received; Rejected those answered 401.
func (e *Echo) Requests() int { return int(e.requests.Load()) }

// Rejected counts the requests answered 401.
func (e *Echo) Rejected() int { return int(e.rejected.Load()) }

// LastHeader returns a copy of the last request's headers, credential
// included, so tests can assert what was injected.
func (e *Echo) LastHeader() http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last.Clone()
}

// ServeHTTP checks the credential, then echoes, or serves the test paths:
// /stream?chunks=N&interval=D (NDJSON, flushed per line), /redirect,
// /status/<code>, /big?bytes=N (zeros, streamed).
func (e *Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	e.mu.Lock()
	e.last = r.Header.Clone()
	e.mu.Unlock()

	tok, ok := strings.CutPrefix(r.Header.Get(e.header), e.prefix)
	if !ok || tok == "" || !e.valid(tok) {
		e.rejected.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_token", "message": "missing, invalid or expired token"})
		return
	}
	switch {
	case r.URL.Path == "/stream":
		e.stream(w, r)
	case r.URL.Path == "/redirect":
		http.Redirect(w, r, "/api/v2/target", http.StatusFound)
	case strings.HasPrefix(r.URL.Path, "/status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 200 || code > 599 {
			code = http.StatusBadRequest
		}
		writeJSON(w, code, map[string]any{"status": code})
	case r.URL.Path == "/big":
		n, _ := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.CopyN(w, zeros{}, n)
	default:
		e.echo(w, r, tok)
	}
}

func (e *Echo) echo(w http.ResponseWriter, r *http.Request, tok string) {
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, maxEchoBody+1))
	if err != nil {
		return
	}
	if n > maxEchoBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": "body too large"})
		return
	}
	headers := map[string]string{}
	for k, v := range r.Header {
		if k != e.header {
			headers[k] = strings.Join(v, ", ")
		}
	}
	sum := sha256.Sum256([]byte(tok))
	writeJSON(w, http.StatusOK, map[string]any{
		"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "authorized": true,
		"token_fingerprint": "sha256:" + hex.EncodeToString(sum[:2]), "headers": headers, "body_bytes": n,
	})
}

func (e *Echo) stream(w http.ResponseWriter, r *http.Request) {
	chunks, _ := strconv.Atoi(r.URL.Query().Get("chunks"))
	interval, _ := time.ParseDuration(r.URL.Query().Get("interval"))
	chunks = min(max(chunks, 1), 100000)
	w.Header().Set("Content-Type", "application/x-ndjson")
	rc := http.NewResponseController(w)
	for i := range chunks {
		if i > 0 && interval > 0 {
			select {
			case <-time.After(interval):
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, "{\"n\":%d}\n", i+1); err != nil {
			return
		}
		_ = rc.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(v)
	_, _ = w.Write(b)
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
