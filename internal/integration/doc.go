// Package integration holds tests that drive several of credproxy's
// packages together in one process, without the binary: a token cache
// feeding the reverse and forward proxies, the admin server's token API
// and local OAuth 2.0 endpoint, all on one metrics registry. What one
// package owns is tested in that package; what only the combination
// shows (that every documented metric exists after traffic, with its
// documented type and labels) is tested here. It has no code of its own.
package integration
