// Package tokensink keeps a route's current token in a file, for tools
// that read a bearer token from a file (the OpenTelemetry Collector's
// bearertokenauth `filename`, scripts) rather than through the proxy.
//
// A Sink is fed by the token cache's OnToken hook and writes on its own
// goroutine, so that a slow or failing disk never holds up renewals or
// requests: the cache only swaps a pointer. Each write replaces the file
// with internal/atomicfile (a temporary file in the same directory,
// written, given its mode and synced, then renamed over the old one, and
// the directory synced), so a reader sees the previous token or the next
// one, whole, never an empty or torn file. The file holds the bare token with no
// newline, as bearertokenauth sends the file's bytes as they are. A
// failed write is logged without the token, counted, and retried with
// backoff until it succeeds or a newer token replaces it. The file is
// removed when the sink stops, at shutdown. The write counter lives here
// too (NewMetrics, Options.Metrics).
package tokensink
