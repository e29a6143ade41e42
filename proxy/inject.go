package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/reqinfo"
	"github.com/credproxy/credproxy/internal/secret"
	"go.uber.org/zap"
)

// MaxReplayBody is the largest request body kept for a replay after an
// upstream 401. Larger bodies stream through unbuffered, and a 401 on them
// goes back to the client.
const MaxReplayBody = 1 << 20

// maxDrain bounds what is read from a discarded 401 answer so that its
// connection can be reused; a larger answer just closes the connection.
const maxDrain = 64 << 10

// injector is the RoundTripper that puts a route's credential on a request
// and, when the upstream answers 401 to the token that is current, gets it
// renewed (once, however many requests saw the 401) and replays the request
// with the new token.
//
// Unlike a general http.RoundTripper it owns and modifies the request it is
// given: both callers (the reverse proxy's outbound clone and the forward
// proxy's parsed request) hand it a request nobody else uses.
type injector struct {
	route *Route
	next  http.RoundTripper
	// pools, when set, are the route's pools (next's innermost): a
	// request whose reqinfo names a caller identity goes through that
	// identity's pools within them instead (Transport.ForIdentity).
	pools   *Transport
	metrics *routeMetrics
	log     *zap.Logger
	// scrubs recycles the buffers of the body scan (readback.go).
	scrubs scrubPool
}

// errCredential wraps a failure to obtain a token: the request was not
// sent, and the client gets 503.
type errCredential struct{ err error }

func (e *errCredential) Error() string { return e.err.Error() }
func (e *errCredential) Unwrap() error { return e.err }

// errNotAllowed is returned when a request's destination is not one of the
// route's hosts over HTTPS: the credential must not go there.
var errNotAllowed = errors.New("destination is not one of the route's hosts over https")

// RoundTrip sends req with the credential and cleans the answer of every
// token sent (readback.go).
func (in *injector) RoundTrip(req *http.Request) (*http.Response, error) {
	var sent sentTokens
	resp, err := in.roundTrip(req, &sent)
	if err != nil {
		return nil, err
	}
	sent.readBack(req, resp, &in.scrubs, !in.route.noBodyScan)
	return resp, nil
}

// roundTrip sends req, replaying it once after a 401 if it can, and adds
// to sent every token it put on the wire.
func (in *injector) roundTrip(req *http.Request, sent *sentTokens) (*http.Response, error) {
	if !in.route.allows(req.URL) {
		return nil, fmt.Errorf("route %s: %s: %w", in.route.name, req.URL.Redacted(), errNotAllowed)
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &clientBody{ReadCloser: req.Body}
	}
	// The body is buffered before the token is read: a client that
	// trickles its body must never make credproxy send a token that
	// expired while it waited.
	replay, err := replayable(req)
	if err != nil {
		return nil, clientGone(req, err)
	}
	tok, err := in.route.tokens.Token(req.Context())
	if err != nil {
		return nil, &errCredential{err}
	}
	next, info := in.transportFor(req, tok)
	req.Header[in.route.header] = in.route.headerValues(tok)
	sent.add(tok.Value.Reveal(), in.route.mark(tok))
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, clientGone(req, scrubbed(err, tok))
	}
	if resp.StatusCode != http.StatusUnauthorized {
		in.succeeded()
		return resp, nil
	}

	// The upstream rejected the token. Invalidate renews it if it is
	// still the current one, or returns the one that replaced it. This
	// happens whether or not the request can be replayed: a client whose
	// every request is a large streamed upload must get a renewed token on
	// its retry, not the rejected one again until the scheduled renewal.
	fresh, ierr := in.route.tokens.Invalidate(req.Context(), tok)
	if replay == nil {
		in.log.Info("upstream rejected the token; the request body was streamed and cannot be replayed, so the 401 goes to the client",
			zap.Stringer("rejected", tok.Value), zap.Bool("renewed", ierr == nil))
		return resp, nil
	}
	if ierr != nil {
		in.log.Warn("upstream rejected the token and no other could be obtained; the 401 goes to the client",
			zap.Stringer("token", tok.Value), zap.Error(ierr))
		in.metrics.replays("failed")
		return resp, nil
	}
	if fresh.Value.Equal(tok.Value) {
		// Renewals are held back (this path refuses every token): a
		// replay would be refused too.
		in.log.Debug("upstream rejected the token; renewals are held back, so the 401 goes to the client", zap.Stringer("token", tok.Value))
		return resp, nil
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()

	again := req.Clone(req.Context())
	again.Body = replay()
	again.Header[in.route.header] = in.route.headerValues(fresh)
	sent.add(fresh.Value.Reveal(), in.route.mark(fresh))
	if info != nil {
		info.Token = fresh.Value
	}
	in.metrics.replays("replayed")
	in.log.Info("upstream rejected the token; replaying with the renewed one",
		zap.Stringer("rejected", tok.Value), zap.Stringer("token", fresh.Value))
	resp, err = next.RoundTrip(again)
	if err != nil {
		return nil, clientGone(again, scrubbed(err, tok, fresh))
	}
	if resp.StatusCode != http.StatusUnauthorized {
		in.succeeded()
	}
	return resp, nil
}

// transportFor returns what carries req, sent with tok, and the edge's
// reqinfo.Info of the request (nil when the gate is off: the route's
// pools). With the gate on, tok is recorded for its audit record, and a
// caller with an identity gets pools of its own.
func (in *injector) transportFor(req *http.Request, tok exchange.Token) (http.RoundTripper, *reqinfo.Info) {
	info := reqinfo.From(req.Context())
	if info == nil {
		return in.next, nil
	}
	info.Token = tok.Value
	if info.Identity != "" && in.pools != nil {
		return in.pools.ForIdentity(info.Identity), info
	}
	return in.next, info
}

// succeeder is implemented by Tokens that want to know when an upstream
// accepted a request (*tokencache.Cache: it ends the back-off of
// 401-triggered renewals).
type succeeder interface{ Succeeded() }

// succeeded tells the route's Tokens that the upstream answered other
// than 401. It is on the hot path: for a cache, two atomic loads.
func (in *injector) succeeded() {
	if in.route.succeeder != nil {
		in.route.succeeder.Succeeded()
	}
}

// scrubbed is a transport error with the tokens sent taken out of its
// text: net/http quotes an upstream's malformed answer (a header line, the
// status, Content-Length), and an upstream can put the token it received
// there. The text is what the client's 502 and the log show.
func scrubbed(err error, sent ...exchange.Token) error {
	secrets := make([]secret.Secret, len(sent))
	for i, t := range sent {
		secrets[i] = t.Value
	}
	return secret.RedactError(err, secrets...)
}

// clientBodyError is a failure to read the client's request body (a
// malformed chunked encoding, a connection cut mid-upload): the client's
// fault, answered 400, not an upstream failure.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// clientBody marks the errors of reading a client's body, wherever it is
// read: buffered here for a replay, or streamed by the transport, which
// returns the body's own error.
type clientBody struct{ io.ReadCloser }

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &clientBodyError{err}
	}
	return n, err
}

// clientGone adds the request context's error to err when the client has
// gone away: a request body cut off by the client then reads as a
// cancelled request (status 499, no log at warning level), not as an
// upstream failure.
func clientGone(req *http.Request, err error) error {
	if cerr := req.Context().Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", err, cerr)
	}
	return err
}

// replayable prepares req's body for a possible replay. It returns a
// function giving a fresh copy of the body, or nil when the body is too
// large to keep (it then streams through untouched). A body of unknown
// length is read up to MaxReplayBody first.
func replayable(req *http.Request) (func() io.ReadCloser, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return func() io.ReadCloser { return http.NoBody }, nil
	}
	if req.ContentLength > MaxReplayBody {
		return nil, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, MaxReplayBody+1))
	if err != nil {
		return nil, err
	}
	if len(buf) > MaxReplayBody {
		// Unknown length and too long: send what was read, then the rest.
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return nil, nil
	}
	req.Body.Close()
	body := func() io.ReadCloser { return io.NopCloser(bytes.NewReader(buf)) }
	req.Body = body()
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	if req.ContentLength < 0 {
		req.ContentLength = int64(len(buf))
	}
	return body, nil
}
