package proxy

// Can use, never read: the credential credproxy injects never comes back
// to the client, whatever the upstream echoes.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// readBackModes are the ways in a client reads through: reverse, an
// intercepted tunnel, and a plain http:// request that the forward proxy
// upgrades to https.
var readBackModes = []faultMode{
	faultModes[0],
	faultModes[1],
	{"forward-plain", func(t *testing.T, up *upstream, tokens Tokens, log *zap.Logger) faultTarget {
		target := faultModes[1].setup(t, up, tokens, log)
		target.base = strings.Replace(target.base, "https://", "http://", 1)
		return target
	}},
}

// echoHeaders answers with every request header twice: as X-Echo-<name>
// response headers (and trailers), and as a JSON body, as debugging
// endpoints do.
func echoHeaders(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "X-Echo-Trailer")
	for k, vv := range r.Header {
		for _, v := range vv {
			w.Header().Add("X-Echo-"+k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header})
	w.Header().Set("X-Echo-Trailer", r.Header.Get("Authorization"))
}

// markOf is what a token in a body is replaced by, computed here
// independently of the code under test.
func markOf(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "[credential sha256:" + hex.EncodeToString(sum[:2]) + "]"
}

// assertNoToken fails when the client's view of an answer (status line,
// headers, body, trailers) holds any piece of the tokens.
func assertNoToken(t *testing.T, what string, resp *http.Response, body string, toks ...string) {
	t.Helper()
	var b strings.Builder
	_ = resp.Header.Write(&b)
	_ = resp.Trailer.Write(&b)
	if p, form := logtest.Leak(b.String(), toks...); p != "" {
		t.Errorf("%s: headers or trailers hold %q (%s):\n%s", what, p, form, b.String())
	}
	if p, form := logtest.Leak(body, toks...); p != "" {
		t.Errorf("%s: body holds %q (%s): %s", what, p, form, body)
	}
}

// TestEchoedCredentialNeverReachesTheClient: an upstream that echoes the
// request's headers in its answer's headers, trailers and body gives the
// client none of the token, in every mode; the body shows the mark.
func TestEchoedCredentialNeverReachesTheClient(t *testing.T) {
	const tok = "echo-tok-0123456789abcdef"
	for _, mode := range readBackModes {
		t.Run(mode.name, func(t *testing.T) {
			log, _ := logtest.New(t)
			up := newUpstream(t, tok)
			up.handler = echoHeaders
			target := mode.setup(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New(tok)}}, log)
			resp, err := target.client.Get(target.base + "/echo")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET /echo = %d %q", resp.StatusCode, body)
			}
			assertNoToken(t, "GET /echo", resp, string(body), tok)
			if !strings.Contains(string(body), "Bearer "+markOf(tok)) {
				t.Errorf("body %q lacks the mark %s", body, markOf(tok))
			}
			if got := up.seen(); len(got) != 1 || got[0].Auth != "Bearer "+tok {
				t.Errorf("the upstream did not get the credential: %+v", got)
			}
		})
	}
}

// TestCredentialSplitAcrossChunksReplaced: a body that carries the token
// one byte per write, flushed after each, reaches the client with the
// token replaced, in every mode.
func TestCredentialSplitAcrossChunksReplaced(t *testing.T) {
	const tok = "split-tok-0123456789abcdef"
	want := `{"a":"Bearer ` + markOf(tok) + `","b":"x` + markOf(tok) + markOf(tok) + `t"}`
	for _, mode := range readBackModes {
		t.Run(mode.name, func(t *testing.T) {
			log, _ := logtest.New(t)
			up := newUpstream(t, tok)
			up.handler = func(w http.ResponseWriter, r *http.Request) {
				// A partial prefix ("spl") before the real occurrence, and
				// two occurrences back to back.
				a := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				for _, c := range []byte(`{"a":"Bearer ` + a + `","b":"x` + a + a + `t"}`) {
					_, _ = w.Write([]byte{c})
					w.(http.Flusher).Flush()
				}
			}
			target := mode.setup(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New(tok)}}, log)
			resp, err := target.client.Get(target.base + "/split")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertNoToken(t, "GET /split", resp, string(body), tok)
			if string(body) != want {
				t.Errorf("body = %q\nwant   %q", body, want)
			}
		})
	}
}

// TestKnownLengthBodyWithCredential: an answer with a Content-Length
// whose body holds the token reaches the client whole, with the mark
// (whose length differs from the token's), and HEAD, 204 and 304 answers
// keep their headers.
func TestKnownLengthBodyWithCredential(t *testing.T) {
	const tok = "short-tok-123"
	for _, mode := range readBackModes {
		t.Run(mode.name, func(t *testing.T) {
			log, _ := logtest.New(t)
			up := newUpstream(t, tok)
			up.handler = func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/204":
					w.WriteHeader(http.StatusNoContent)
					return
				case "/304":
					w.Header().Set("ETag", `"v1"`)
					w.WriteHeader(http.StatusNotModified)
					return
				}
				body := strings.Repeat("x", 5000) + r.Header.Get("Authorization") + "!"
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				io.WriteString(w, body)
			}
			target := mode.setup(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New(tok)}}, log)
			resp, err := target.client.Get(target.base + "/len")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := strings.Repeat("x", 5000) + "Bearer " + markOf(tok) + "!"; err != nil || string(body) != want {
				t.Errorf("GET /len = %d bytes, %v; want %d bytes ending in the mark", len(body), err, len(want))
			}
			head, err := target.client.Head(target.base + "/len")
			if err != nil || head.StatusCode != 200 || head.ContentLength != int64(5000+len("Bearer "+tok+"!")) {
				t.Errorf("HEAD /len = %v, Content-Length %d, %v", head.Status, head.ContentLength, err)
			}
			for _, p := range []string{"/204", "/304"} {
				resp, err := target.client.Get(target.base + p)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.Status[:3] != p[1:] {
					t.Errorf("GET %s = %s", p, resp.Status)
				}
			}
		})
	}
}

// TestCompressedBodyPassesAsItIs: a body with a Content-Encoding is not
// scanned (the documented limitation); its headers still are.
func TestCompressedBodyPassesAsItIs(t *testing.T) {
	const tok = "gzip-tok-0123456789"
	log, _ := logtest.New(t)
	up := newUpstream(t, tok)
	up.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		io.WriteString(w, "not really gzip: "+tok)
	}
	target := faultModes[0].setup(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New(tok)}}, log)
	req, _ := http.NewRequest("GET", target.base+"/gz", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := target.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "not really gzip: "+tok {
		t.Errorf("compressed body = %q, want it as the upstream sent it", body)
	}
	if v := resp.Header.Get("X-Echo"); v != "" {
		t.Errorf("X-Echo = %q, want the header dropped", v)
	}
}

// renewingTokens hands out first until it is invalidated, then second.
type renewingTokens struct {
	mu            sync.Mutex
	first, second exchange.Token
	renewed       bool
}

func (r *renewingTokens) Token(context.Context) (exchange.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.renewed {
		return r.second, nil
	}
	return r.first, nil
}

func (r *renewingTokens) Invalidate(context.Context, exchange.Token) (exchange.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.renewed = true
	return r.second, nil
}

// TestBothTokensOfAReplayScanned: on a 401 replay the request carried two
// tokens; an upstream that echoes both in its answer gives the client
// neither.
func TestBothTokensOfAReplayScanned(t *testing.T) {
	const old, fresh = "old-token-0123456789", "new-token-9876543210"
	for _, mode := range readBackModes {
		t.Run(mode.name, func(t *testing.T) {
			log, _ := logtest.New(t)
			up := newUpstream(t, fresh)
			up.handler = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Previous", "Bearer "+old)
				fmt.Fprintf(w, "previous %s, now %s", old, r.Header.Get("Authorization"))
			}
			tokens := &renewingTokens{first: exchange.Token{Value: secret.New(old)}, second: exchange.Token{Value: secret.New(fresh)}}
			target := mode.setup(t, up, tokens, log)
			resp, err := target.client.Post(target.base+"/replay", "text/plain", strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("POST /replay = %d %q", resp.StatusCode, body)
			}
			assertNoToken(t, "POST /replay", resp, string(body), old, fresh)
			if want := "previous " + markOf(old) + ", now Bearer " + markOf(fresh); string(body) != want {
				t.Errorf("body = %q, want %q", body, want)
			}
		})
	}
}

// TestTraceRefused: TRACE and TRACK get 405 from credproxy in every mode,
// before any token is read, and the upstream sees nothing.
func TestTraceRefused(t *testing.T) {
	for _, mode := range readBackModes {
		for _, method := range []string{"TRACE", "TRACK", "trace"} {
			t.Run(mode.name+"/"+method, func(t *testing.T) {
				log, _ := logtest.New(t)
				up := newUpstream(t, "trace-tok-0123456789")
				tokens := &countingTokens{tok: exchange.Token{Value: secret.New("trace-tok-0123456789")}}
				target := mode.setup(t, up, tokens, log)
				req, _ := http.NewRequest(method, target.base+"/x", nil)
				resp, err := target.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"error":"method_not_allowed"`) {
					t.Errorf("%s = %d %q, want 405 method_not_allowed", method, resp.StatusCode, body)
				}
				if n := len(up.seen()); n != 0 {
					t.Errorf("the upstream saw %d requests", n)
				}
				if n := tokens.reads(); n != 0 {
					t.Errorf("the token was read %d times", n)
				}
			})
		}
	}
}

// countingTokens is fakeTokens that counts the tokens read.
type countingTokens struct {
	mu  sync.Mutex
	tok exchange.Token
	n   int
}

func (c *countingTokens) Token(context.Context) (exchange.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.tok, nil
}

func (c *countingTokens) Invalidate(context.Context, exchange.Token) (exchange.Token, error) {
	return c.Token(context.Background())
}

func (c *countingTokens) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestScannedStreamStillFlushed: with the scan on, the first line of an
// NDJSON stream reaches the client before the upstream sends the second,
// even when the line ends in bytes that begin the token (they are the
// only bytes held back).
func TestScannedStreamStillFlushed(t *testing.T) {
	const tok = "stream-tok-0123456789"
	for _, mode := range readBackModes {
		t.Run(mode.name, func(t *testing.T) {
			log, _ := logtest.New(t)
			up := newUpstream(t, tok)
			release := make(chan struct{})
			up.handler = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-ndjson")
				fmt.Fprint(w, "{\"n\":1}\nstr")
				w.(http.Flusher).Flush()
				<-release
				fmt.Fprint(w, "eam\n{\"n\":2}\n")
			}
			target := mode.setup(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New(tok)}}, log)
			resp, err := target.client.Get(target.base + "/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := make(chan string, 1)
			br := bufio.NewReader(resp.Body)
			go func() { line, _ := br.ReadString('\n'); got <- line }()
			select {
			case line := <-got:
				if line != "{\"n\":1}\n" {
					t.Fatalf("first line = %q", line)
				}
			case <-time.After(5 * time.Second):
				close(release)
				t.Fatal("the first line did not arrive before the upstream sent the rest")
			}
			close(release)
			rest, _ := io.ReadAll(br)
			if string(rest) != "stream\n{\"n\":2}\n" {
				t.Errorf("rest = %q", rest)
			}
		})
	}
}

// chunkReader hands out data in chunks of random sizes (0 included), the
// last one sometimes with io.EOF.
type chunkReader struct {
	data string
	r    *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.data == "" {
		return 0, io.EOF
	}
	n := copy(p, c.data[:min(len(c.data), c.r.IntN(8))])
	c.data = c.data[n:]
	if c.data == "" && c.r.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// scrubAll reads data through a scrubBody for toks in random chunks, into
// buffers of random sizes (1 byte included).
func scrubAll(t *testing.T, data string, seed uint64, toks ...string) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed>>32))
	b := &scrubBody{body: io.NopCloser(&chunkReader{data: data, r: r}), resp: &http.Response{}, scan: true, pool: &scrubPool{}}
	for _, tok := range toks {
		b.sent.add(tok, "<"+tok[:1]+">")
	}
	var got []byte
	for range 10*len(data) + 100 {
		p := make([]byte, 1+r.IntN(2*len(toks[0])+4))
		n, err := b.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			b.Close()
			return string(got)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no EOF after %d reads of %d bytes", 10*len(data)+100, len(data))
	return ""
}

// FuzzScrubBody: whatever the chunking of the body and the sizes of the
// reads, the scan gives what strings.ReplaceAll gives on the whole.
func FuzzScrubBody(f *testing.F) {
	f.Add("hello tok-abc world tok-abtok-abc tok-a", "tok-abc", uint64(1))
	f.Add("aaaaaaa", "aa", uint64(2))
	f.Add("abababab", "abab", uint64(3))
	f.Add("", "x", uint64(4))
	f.Fuzz(func(t *testing.T, data, tok string, seed uint64) {
		if tok == "" || len(tok) > 40 {
			return
		}
		want := strings.ReplaceAll(data, tok, "<"+tok[:1]+">")
		if got := scrubAll(t, data, seed, tok); got != want {
			t.Errorf("scrub(%q, %q) = %q, want %q", data, tok, got, want)
		}
	})
}

// TestScrubTwoTokens: both tokens of a replay are replaced, each by its
// own mark, whatever the chunking.
func TestScrubTwoTokens(t *testing.T) {
	data := "a old-tok b new-tok c old-tonew-tok old-tok"
	want := "a <o> b <n> c old-to<n> <o>"
	for seed := range uint64(200) {
		if got := scrubAll(t, data, seed, "old-tok", "new-tok"); got != want {
			t.Fatalf("seed %d: %q, want %q", seed, got, want)
		}
	}
}
