package exchange

// Unavailable is what a token supply's error says when no valid token can
// be had, so that the request must not be sent: the contract between the
// supply (tokencache.Cache's *UnavailableError) and those that spend its
// tokens (the proxies, the token API), which find it with errors.As and
// need know nothing else of the supply. It lives here, below both, so
// that neither imports the other.
type Unavailable interface {
	error
	// ClientDetail says why in credproxy's own words: safe to send to
	// the client whose request was refused.
	ClientDetail() string
	// LogCause is the failure behind it (the last exchange's error), for
	// the log only: it may quote an identity service's text, which can
	// echo a secret in an encoding no redactor knows. Nil when none.
	LogCause() error
}
