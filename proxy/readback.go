package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Can use, never read: whoever reaches a listener may spend the route's
// credential but never learn it. An upstream that echoes the request (a
// debugging endpoint, an API that quotes the headers it got, TRACE) would
// hand it back; for a static token that is the long-lived secret itself.
// So TRACE and TRACK are refused, and the answer to a request is cleaned
// of every token sent on it (two after a 401 replay): response headers and
// trailers that hold one are dropped, and a body without a
// Content-Encoding has each occurrence replaced by the token's mark,
// "[credential sha256:xxxx]", as it streams.
//
// Not covered: a compressed body (gzip, br, ...) passes as it is; a token
// the upstream re-encodes (base64, JSON or URL escapes, split by other
// bytes) is not recognised; nor are the headers of a 1xx answer, the
// bytes of an upgraded connection, or an answer that ends in a piece of a
// token. An upstream that wants to leak the token can always do so: the
// scan protects against upstreams that echo, not against hostile ones.

// refuseReadBackMethods answers TRACE and TRACK (in any case: some
// servers read methods without it) with 405 before anything else: the
// upstream would echo the request, credential included.
type refuseReadBackMethods struct {
	next  http.Handler
	route string
}

func (h *refuseReadBackMethods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Method, "TRACE") || strings.EqualFold(r.Method, "TRACK") {
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, errorBody{Error: "method_not_allowed", Route: h.route,
			Detail: r.Method + " is refused: the upstream would echo the request, credential included"})
		return
	}
	h.next.ServeHTTP(w, r)
}

// sentTokens are the tokens sent on one request (two after a 401 replay)
// with their marks; a fixed array, so that keeping them costs nothing.
type sentTokens struct {
	n     int
	toks  [2]string
	marks [2]string
}

func (s *sentTokens) add(tok, mark string) {
	if s.n < len(s.toks) && tok != "" {
		s.toks[s.n], s.marks[s.n] = tok, mark
		s.n++
	}
}

// in reports whether v holds one of the tokens.
func (s *sentTokens) in(v string) bool {
	for i := range s.n {
		if strings.Contains(v, s.toks[i]) {
			return true
		}
	}
	return false
}

// shortest is the length of the shortest token.
func (s *sentTokens) shortest() int {
	m := len(s.toks[0])
	if s.n > 1 {
		m = min(m, len(s.toks[1]))
	}
	return m
}

// dropHeaders removes every header whose name or one of whose values
// holds a token.
func (s *sentTokens) dropHeaders(h http.Header) {
	for k, vv := range h {
		if s.in(k) {
			delete(h, k)
			continue
		}
		for _, v := range vv {
			if s.in(v) {
				delete(h, k)
				break
			}
		}
	}
}

// readBack cleans resp, the answer to req, of the tokens sent. An
// upgraded connection's body is the connection itself and is left alone.
// A body that may hold a token is scanned as it streams; its
// Content-Length header goes (a mark's length differs from the token's),
// so net/http frames it anew: with a Content-Length again when the whole
// body is written before the handler returns and fits net/http's buffer,
// chunked otherwise. resp.ContentLength stays, so the reverse proxy
// flushes the body as it did (a known-length body every flushInterval,
// a streamed one at once).
func (s *sentTokens) readBack(req *http.Request, resp *http.Response, pool *scrubPool, scan bool) {
	if s.n == 0 {
		return
	}
	s.dropHeaders(resp.Header)
	s.dropHeaders(resp.Trailer)
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	scan = scan && bodyMayHold(req, resp, s.shortest())
	if !scan && resp.ContentLength >= 0 && len(resp.Trailer) == 0 {
		return // no body to scan and no trailers to come
	}
	if scan {
		resp.Header.Del("Content-Length")
	}
	resp.Body = &scrubBody{body: resp.Body, resp: resp, sent: *s, scan: scan, pool: pool}
}

// bodyMayHold reports whether resp's body is to be scanned: it has one
// that could hold a token, and no Content-Encoding (other than identity).
func bodyMayHold(req *http.Request, resp *http.Response, shortest int) bool {
	switch {
	case req.Method == http.MethodHead, resp.StatusCode == http.StatusNoContent,
		resp.StatusCode == http.StatusNotModified, resp.StatusCode < 200:
		return false
	case resp.ContentLength >= 0 && resp.ContentLength < int64(shortest):
		return false
	}
	for _, ce := range resp.Header.Values("Content-Encoding") {
		for e := range strings.SplitSeq(ce, ",") {
			if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "identity") {
				return false
			}
		}
	}
	return true
}

// errBodyClosed is a read of a scrubbed body after Close.
var errBodyClosed = errors.New("read of a closed response body")

// scrubBody is a response body with the tokens sent replaced by their
// marks as it streams, and its trailers cleaned once read. Nothing is
// buffered but a token's beginning: the bytes at the end of what the
// upstream sent so far that could start a token are held until the next
// bytes tell (or the body ends: they are then released, not being a
// token). Everything before them is handed on at once, so a stream
// that pauses is not delayed.
//
// It reads straight into the caller's buffer, the held bytes first; only
// when a token was found does the output (longer or shorter than the
// input) go through a buffer of its own, taken from a pool when first
// needed and put back by Close. Like any body it is read and closed by
// one goroutine.
type scrubBody struct {
	body io.ReadCloser
	resp *http.Response
	sent sentTokens
	scan bool
	pool *scrubPool
	// bufs backs held and out; nil until needed and after Close.
	bufs *scrubBufs
	// out is output made and not yet read.
	out []byte
	err error
}

// scrubBufs are a scrubBody's buffers: held is a token's beginning not
// yet handed on; buf backs the output made when a token is replaced;
// small backs reads into a caller's buffer too small for held.
type scrubBufs struct{ held, buf, small []byte }

// scrubPool recycles the buffers of scrubBodies: a body whose scan finds
// no token and holds nothing back never takes one.
type scrubPool struct{ p sync.Pool }

func (p *scrubPool) get() *scrubBufs {
	if b, ok := p.p.Get().(*scrubBufs); ok {
		return b
	}
	return new(scrubBufs)
}

func (p *scrubPool) put(b *scrubBufs) {
	b.held, b.buf = b.held[:0], b.buf[:0]
	p.p.Put(b)
}

// held returns the bytes held back.
func (b *scrubBody) held() []byte {
	if b.bufs == nil {
		return nil
	}
	return b.bufs.held
}

// buffers returns the body's buffers, from the pool the first time.
func (b *scrubBody) buffers() *scrubBufs {
	if b.bufs == nil {
		b.bufs = b.pool.get()
	}
	return b.bufs
}

func (b *scrubBody) Read(p []byte) (int, error) {
	for {
		if len(b.out) > 0 {
			n := copy(p, b.out)
			b.out = b.out[n:]
			return n, nil
		}
		if b.err != nil || len(p) == 0 {
			return 0, b.err
		}
		if !b.scan {
			n, err := b.body.Read(p)
			b.noteErr(err)
			return n, err
		}
		if n := b.readScrubbed(p); n > 0 {
			return n, nil
		}
	}
}

// readScrubbed reads once from the body and returns how many bytes at
// the start of p are output; output that went through a buffer is left
// in out instead.
func (b *scrubBody) readScrubbed(p []byte) int {
	data, direct := p, true
	if held := b.held(); len(p) <= len(held) {
		bufs := b.buffers()
		if cap(bufs.small) < len(held)+512 {
			bufs.small = make([]byte, len(held)+512)
		}
		data, direct = bufs.small[:cap(bufs.small)], false
	}
	k := copy(data, b.held())
	n, err := b.body.Read(data[k:])
	b.noteErr(err)
	data = data[:k+n]
	emit := b.scrub(data, err == io.EOF)
	if direct || emit == 0 {
		return emit
	}
	bufs := b.buffers()
	b.out = append(bufs.buf[:0], data[:emit]...)
	bufs.buf = b.out[:0]
	return 0
}

// scrub replaces the tokens in data, keeps in held the bytes at its end
// that could begin one (none when final), and returns how many bytes at
// the start of data are output; when a token was replaced the output is
// in out instead, and it returns 0.
func (b *scrubBody) scrub(data []byte, final bool) int {
	at, which := b.next(data)
	if at < 0 {
		return len(data) - b.hold(data, final)
	}
	bufs := b.buffers()
	out := bufs.buf[:0]
	for at >= 0 {
		out = append(out, data[:at]...)
		out = append(out, b.sent.marks[which]...)
		data = data[at+len(b.sent.toks[which]):]
		at, which = b.next(data)
	}
	h := b.hold(data, final)
	out = append(out, data[:len(data)-h]...)
	b.out, bufs.buf = out, out[:0]
	return 0
}

// next returns where the first token in data starts and which it is, or
// -1.
func (b *scrubBody) next(data []byte) (at, which int) {
	at = -1
	for i := range b.sent.n {
		if j := bytes.Index(data, []byte(b.sent.toks[i])); j >= 0 && (at < 0 || j < at) {
			at, which = j, i
		}
	}
	return at, which
}

// hold keeps the longest end of data that is the beginning of a token
// (data holds no whole token), and returns its length. The bytes are
// copied: data may be the caller's buffer.
func (b *scrubBody) hold(data []byte, final bool) int {
	h := 0
	if !final {
		for i := range b.sent.n {
			h = max(h, prefixAtEnd(data, b.sent.toks[i]))
		}
	}
	if h > 0 || len(b.held()) > 0 {
		bufs := b.buffers()
		bufs.held = append(bufs.held[:0], data[len(data)-h:]...)
	}
	return h
}

// prefixAtEnd returns the length of the longest end of data that is a
// proper beginning of tok.
func prefixAtEnd(data []byte, tok string) int {
	from := max(0, len(data)-len(tok)+1)
	for from < len(data) {
		i := bytes.IndexByte(data[from:], tok[0])
		if i < 0 {
			return 0
		}
		if strings.HasPrefix(tok, string(data[from+i:])) {
			return len(data) - from - i
		}
		from += i + 1
	}
	return 0
}

// noteErr records the body's end or failure. At the end, net/http has
// filled in the trailers: those holding a token go.
func (b *scrubBody) noteErr(err error) {
	if err == nil {
		return
	}
	b.err = err
	if err == io.EOF {
		b.sent.dropHeaders(b.resp.Trailer)
	}
}

// Close closes the body, cleans the trailers (the reverse proxy reads
// them after Close) and gives the buffers back.
func (b *scrubBody) Close() error {
	if b.err == errBodyClosed {
		return nil
	}
	err := b.body.Close()
	b.sent.dropHeaders(b.resp.Trailer)
	b.err, b.out = errBodyClosed, nil
	if b.bufs != nil {
		b.pool.put(b.bufs)
		b.bufs = nil
	}
	return err
}
