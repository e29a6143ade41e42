// Package tokenapi serves the endpoints that hand a route's token to a
// local caller, on the admin listener when CREDPROXY_TOKEN_API=true: the
// token API, GET /v1/token/<route> (NewTokenHandler), and the local
// OAuth 2.0 token endpoint, POST /oauth2/token (NewOAuth2Handler), with
// the caller guards they share (refuseCaller: loopback callers only, no
// proxy on the way, no browser, no DNS rebinding).
//
// It is the most security-sensitive code in credproxy, and a package of
// its own so that it can be read, reviewed and tested alone: nothing else
// here hands out a token, and the admin listener only mounts the handlers
// it is given. A token leaves credproxy here only in the body of an
// answer to a caller that passed the guards; logs show its fingerprint,
// metrics count requests by route and result, and errors never quote a
// secret.
package tokenapi
