package tokencache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// The fault tests run a cache over the real CSP api-token exchange, its
// HTTP client and parsers, inside a synctest bubble. No socket is opened
// (the bubble forbids real network I/O): the token endpoint is an
// in-memory http.RoundTripper that answers as a real one would, or hangs,
// drips, refuses. Virtual time makes the backoff delays exact.

const faultCredential = "tcf-ApiTok-0a1b2c3d4e5f"

// idp is the in-memory token endpoint. Its answers are tokens of lifetime
// life, numbered, until fault is set.
type idp struct {
	mu    sync.Mutex
	life  time.Duration
	fault func(req *http.Request) (*http.Response, error)
	times []time.Time // when each request arrived
	sent  []string    // the api_token of each request
	n     int
	h     *logtest.Hygiene
}

func (p *idp) RoundTrip(req *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(req.Body)
	req.Body.Close()
	form, _ := url.ParseQuery(string(b))
	p.mu.Lock()
	p.times = append(p.times, time.Now())
	p.sent = append(p.sent, form.Get("api_token"))
	fault := p.fault
	p.n++
	tok := fmt.Sprintf("tcf-Issued-%04d-xyzzy", p.n)
	life := p.life
	p.mu.Unlock()
	if fault != nil {
		return fault(req)
	}
	p.h.Secret(tok)
	return respond(req, 200, fmt.Sprintf(`{"access_token":%q,"token_type":"bearer","expires_in":%d}`, tok, int(life/time.Second))), nil
}

func (p *idp) set(f func(req *http.Request) (*http.Response, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

// requestsSince returns the arrival times of requests from the i-th on.
func (p *idp) requestsSince(i int) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.times[i:]...)
}

func (p *idp) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.times)
}

func respond(req *http.Request, status int, body string, header ...string) *http.Response {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}
}

func answerWith(status int, body string, header ...string) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) { return respond(req, status, body, header...), nil }
}

// dripBody sends one byte a second, forever, until the request's context
// ends, as net/http's body does when the exchange deadline passes.
type dripBody struct{ ctx context.Context }

func (d dripBody) Read(p []byte) (int, error) {
	select {
	case <-d.ctx.Done():
		return 0, d.ctx.Err()
	case <-time.After(time.Second):
		p[0] = ' '
		return 1, nil
	}
}

func (dripBody) Close() error { return nil }

// faultRows are the token endpoint's faults and what the cache must make
// of each, with Rand pinned to 0.5: the result label, a piece of the
// logged error (status and service message), the log level, and the gap
// from the failed renewal to the first retry.
var faultRows = []struct {
	desc     string
	fault    func(*http.Request) (*http.Response, error)
	result   string
	logged   string
	rejected bool
	// firstGap: took + backoff(1) = took + 0.5 s, raised to MinGap (1 s);
	// a rejected credential waits 30 + 0.5*30 s; Retry-After is a floor.
	firstGap time.Duration
}{
	{desc: "connection refused", fault: func(*http.Request) (*http.Response, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}, result: "unavailable", logged: "connection refused", firstGap: time.Second},
	{desc: "hang", fault: func(req *http.Request) (*http.Response, error) {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}, result: "timeout", logged: "context deadline exceeded", firstGap: 10*time.Second + 500*time.Millisecond},
	{desc: "slow-drip body", fault: func(req *http.Request) (*http.Response, error) {
		r := respond(req, 200, "")
		r.Body, r.ContentLength = dripBody{req.Context()}, -1
		return r, nil
	}, result: "timeout", logged: "read answer: context deadline exceeded", firstGap: 10*time.Second + 500*time.Millisecond},
	{desc: "500", fault: answerWith(500, `{"statusCode":500,"message":"Internal Server Error","requestId":"rq-5"}`),
		result: "unavailable", logged: "HTTP 500: Internal Server Error (requestId rq-5)", firstGap: time.Second},
	{desc: "502 HTML page", fault: answerWith(502, "<html>Bad Gateway</html>", "Content-Type", "text/html"),
		result: "unavailable", logged: "HTTP 502: answer is not JSON (text/html, 24 bytes)", firstGap: time.Second},
	{desc: "503 with Retry-After", fault: answerWith(503, `{"message":"maintenance"}`, "Retry-After", "12"),
		result: "unavailable", logged: "HTTP 503: maintenance", firstGap: 12 * time.Second},
	{desc: "429 with Retry-After", fault: answerWith(429, `{"message":"Too many requests"}`, "Retry-After", "30"),
		result: "unavailable", logged: "HTTP 429: Too many requests", firstGap: 30 * time.Second},
	{desc: "400 bad credential", fault: answerWith(400, `{"statusCode":400,"message":"invalid_grant: Invalid refresh token: `+faultCredential+`"}`),
		result: "rejected", logged: "HTTP 400: invalid_grant: Invalid refresh token: [redacted]", rejected: true, firstGap: 45 * time.Second},
	{desc: "401 bad credential", fault: answerWith(401, `{"error":"invalid_client","error_description":"Client authentication failed"}`),
		result: "rejected", logged: "HTTP 401 invalid_client: Client authentication failed", rejected: true, firstGap: 45 * time.Second},
	{desc: "malformed JSON", fault: answerWith(200, `{"access_token":`),
		result: "invalid_response", logged: "HTTP 200: answer is not a JSON token response", firstGap: time.Second},
	{desc: "200 HTML page", fault: answerWith(200, "<html>Sign in</html>", "Content-Type", "text/html"),
		result: "invalid_response", logged: "HTTP 200: answer is not a JSON token response", firstGap: time.Second},
	{desc: "200 without access_token", fault: answerWith(200, `{"token_type":"bearer","expires_in":1800}`),
		result: "invalid_response", logged: "HTTP 200: answer has no access_token", firstGap: time.Second},
	{desc: "expires_in 0", fault: answerWith(200, `{"access_token":"tcf-zero-lifetime-1","expires_in":0}`),
		result: "invalid_response", logged: "HTTP 200: expires_in 0: the token is already expired", firstGap: time.Second},
	{desc: "expires_in negative", fault: answerWith(200, `{"access_token":"tcf-neg-lifetime-1","expires_in":-30}`),
		result: "invalid_response", logged: "HTTP 200: expires_in -30: the token is already expired", firstGap: time.Second},
	{desc: "expires_in a word", fault: answerWith(200, `{"access_token":"tcf-word-lifetime-1","expires_in":"soon"}`),
		result: "invalid_response", logged: `HTTP 200: expires_in "soon" is not a number of seconds`, firstGap: time.Second},
	{desc: "body over the size cap", fault: answerWith(200, `{"access_token":"`+strings.Repeat("a", exchange.MaxResponseSize)+`"}`),
		result: "invalid_response", logged: "HTTP 200: answer larger than 1048576 bytes", firstGap: time.Second},
}

// TestTokenEndpointFaultLifecycle: for each fault of the token endpoint,
// through the real exchange: the failed renewal is logged with the status
// and the service's message (as an error for a rejected credential), the
// retry follows the backoff of the contract, the old token is served
// while valid, requests fail closed with the cause once it expires, and
// the route recovers by itself when the fault clears.
func TestTokenEndpointFaultLifecycle(t *testing.T) {
	for _, row := range faultRows {
		t.Run(row.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const life = 30 * time.Minute
				h := logtest.NewHygiene(t, faultCredential)
				log, logs := h.Logger("logs")
				p := &idp{life: life, h: h}
				src := &exchange.CSPAPIToken{BaseURL: &url.URL{Scheme: "https", Host: "csp.invalid"}, APIToken: secret.Ref{Value: secret.New(faultCredential)},
					Client: &http.Client{Transport: p}, DefaultTTL: time.Hour}
				var mu sync.Mutex
				var results []string
				t0 := time.Now()
				c := start(t, src, Options{Route: "wf", Kind: "csp-api-token", Rand: constRand(0.5), TokenWait: 2 * time.Second, Logger: log,
					OnExchange: func(e Exchange) { mu.Lock(); results = append(results, e.Result); mu.Unlock() }})
				first := mustToken(t, c)

				p.set(row.fault)
				// Renewal at 0.61 of the lifetime (0.66 less half the jitter window, with Rand 0.5).
				renewAt := t0.Add(time.Duration(0.61 * float64(life)))
				time.Sleep(time.Until(renewAt) + row.firstGap + time.Millisecond)
				synctest.Wait()
				times := p.requestsSince(1)
				if len(times) < 2 {
					t.Fatalf("%d requests since the fault, want the renewal and a retry", len(times))
				}
				if got := times[0].Sub(renewAt); got != 0 {
					t.Errorf("renewal %v after 0.61 of the lifetime, want on time", got)
				}
				if got := times[1].Sub(times[0]); got != row.firstGap {
					t.Errorf("first retry after %v, want %v", got, row.firstGap)
				}
				mu.Lock()
				if results[1] != row.result {
					t.Errorf("result %q, want %q", results[1], row.result)
				}
				mu.Unlock()
				level, msg := `"level":"warn","ts"`, "exchange failed"
				if row.rejected {
					level, msg = `"level":"error","ts"`, "exchange rejected: the credential is not accepted"
				}
				if line := lineWith(logs.String(), row.logged); !strings.Contains(line, level) || !strings.Contains(line, msg) ||
					!strings.Contains(line, `"route":"wf"`) || !strings.Contains(line, "csp api-token exchange") {
					t.Errorf("log line with %q: %s\nwant level %s and message %q", row.logged, line, level, msg)
				}

				// The old token is served until the margin (10 s) before expiry.
				time.Sleep(time.Until(first.Expiry.Add(-10*time.Second)) - time.Nanosecond)
				if got := mustToken(t, c); !got.Equal(first) {
					t.Fatalf("old token not served while valid")
				}
				if st := c.Status(); st.State != StateRenewing || !st.Ready || !strings.Contains(st.LastError, row.logged) {
					t.Errorf("status while the old token is valid: %+v", st)
				}
				time.Sleep(time.Nanosecond)
				_, err := c.Token(context.Background())
				h.Err("UnavailableError", err)
				var ue *UnavailableError
				if !errors.As(err, &ue) || ue.Route != "wf" || ue.Cause == nil || !strings.Contains(ue.Cause.Error(), row.logged) {
					t.Fatalf("after expiry: err = %v, want *UnavailableError caused by %q", err, row.logged)
				}
				if !strings.HasPrefix(ue.Detail, "token exchange failed: ") || strings.Contains(ue.Detail, row.logged) {
					t.Errorf("after expiry: client detail %q: want credproxy's reason, not the service's text", ue.Detail)
				}
				st := c.Status()
				h.Add("status", fmt.Sprintf("%+v", st))
				if st.State != StateFailing || st.Ready {
					t.Errorf("status after expiry: %+v", st)
				}

				p.set(nil)
				deadline := time.Now().Add(2 * BackoffMax)
				tok, err := c.Token(context.Background())
				for err != nil && time.Now().Before(deadline) {
					time.Sleep(time.Second)
					tok, err = c.Token(context.Background())
				}
				if err != nil || tok.Equal(first) || !tok.Expiry.After(time.Now()) {
					t.Fatalf("no recovery within %v of the fault clearing: %v", 2*BackoffMax, err)
				}
				if st := c.Status(); st.State != "valid" || st.LastError != "" {
					t.Errorf("status after recovery: %+v", st)
				}
			})
		})
	}
}

// lineWith returns the first JSON log line containing s, or "".
func lineWith(logs, s string) string {
	b, _ := json.Marshal(s)
	quoted := string(b[1 : len(b)-1])
	for line := range strings.Lines(logs) {
		if strings.Contains(line, quoted) {
			return line
		}
	}
	return ""
}

// TestRotatedSecretFile: the api token comes from a file in a volume the
// kubelet updates by swapping the ..data symlink. The next exchange sends
// the new value; a key that disappears or an empty file fails the renewal
// with an error naming the variable, and the current token is kept and
// served; a good file again recovers without a restart.
func TestRotatedSecretFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const v1, v2 = "tcf-RotOne-1111aaaa", "tcf-RotTwo-2222bbbb"
		const life = 30 * time.Minute
		h := logtest.NewHygiene(t, v1, v2)
		log, logs := h.Logger("logs")
		dir := t.TempDir()
		gen := 0
		swap := func(files map[string]string) {
			gen++
			ts := fmt.Sprintf("..2026_11_23_00_%02d_00.%09d", gen, gen)
			must(t, os.Mkdir(filepath.Join(dir, ts), 0o755))
			for k, v := range files {
				must(t, os.WriteFile(filepath.Join(dir, ts, k), []byte(v), 0o400))
			}
			old, _ := os.Readlink(filepath.Join(dir, "..data"))
			must(t, os.Symlink(ts, filepath.Join(dir, "..data_tmp")))
			must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
			if old != "" {
				must(t, os.RemoveAll(filepath.Join(dir, old)))
			}
		}
		swap(map[string]string{"api-token": v1 + "\n"})
		must(t, os.Symlink("..data/api-token", filepath.Join(dir, "api-token")))

		p := &idp{life: life, h: h}
		src := &exchange.CSPAPIToken{BaseURL: &url.URL{Scheme: "https", Host: "csp.invalid"},
			APIToken: secret.Ref{File: filepath.Join(dir, "api-token"), Var: "CREDPROXY_CSP_API_TOKEN_FILE"},
			Client:   &http.Client{Transport: p}, DefaultTTL: time.Hour}
		c := start(t, src, Options{Route: "wf", Kind: "csp-api-token", Rand: constRand(0.5), Logger: log})
		mustToken(t, c)

		swap(map[string]string{"api-token": v2})
		c.Invalidate(context.Background(), mustToken(t, c))
		synctest.Wait()
		second := mustToken(t, c)
		p.mu.Lock()
		sent := append([]string(nil), p.sent...)
		p.mu.Unlock()
		if len(sent) != 2 || sent[0] != v1 || sent[1] != v2 {
			t.Fatalf("api tokens sent %q, want the rotated one at the next exchange", sent)
		}

		for _, bad := range []struct {
			desc   string
			files  map[string]string
			logged string
		}{
			{"key removed from the Secret", map[string]string{"other": "x"}, "no such file or directory"},
			{"empty file", map[string]string{"api-token": "\n"}, "is empty"},
		} {
			swap(bad.files)
			n := p.count()
			time.Sleep(untilNextAttempt(c))
			synctest.Wait()
			if p.count() != n {
				t.Errorf("%s: a request was sent without a readable secret", bad.desc)
			}
			if got := mustToken(t, c); !got.Equal(second) {
				t.Errorf("%s: the current token was not kept", bad.desc)
			}
			st := c.Status()
			if !strings.Contains(st.LastError, "CREDPROXY_CSP_API_TOKEN_FILE") || !strings.Contains(st.LastError, bad.logged) {
				t.Errorf("%s: last error %q, want the variable and %q", bad.desc, st.LastError, bad.logged)
			}
			if line := lineWith(logs.String(), bad.logged); !strings.Contains(line, `"result":"config"`) {
				t.Errorf("%s: log line %s, want result config", bad.desc, line)
			}
		}
		swap(map[string]string{"api-token": v2})
		time.Sleep(untilNextAttempt(c))
		synctest.Wait()
		if st := c.Status(); st.State != "valid" || mustToken(t, c).Equal(second) {
			t.Errorf("no recovery with the file back: %+v", st)
		}
	})
}

// untilNextAttempt is how long until just after the cache's next exchange:
// the one scheduled, or MinGap after the last, whichever is later.
func untilNextAttempt(c *Cache) time.Duration {
	st := c.Status()
	return time.Until(later(st.NextExchange, st.LastAttempt.Add(MinGap))) + time.Millisecond
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
