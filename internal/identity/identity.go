// Package identity computes the fingerprints by which `credproxy token`
// recognises a running credproxy that serves a route as the same
// identity: the token API answers them beside the token, and the command
// computes them from its own configuration. Both sides call Of, so the
// two cannot drift.
//
// There are two, because `credproxy token` may run without a secret:
//
//   - Principal: who the route authenticates as, without the credential:
//     the kind, the identity service's URL (CSP_URL, TOKEN_URL, Splunk's
//     API URL), the client ID or user, the organization, scopes and
//     audience. "sha256:" and 16 hex digits of a SHA-256 over a
//     length-prefixed encoding of them.
//   - Identity: the principal and the credential itself, so that another
//     API token or password of the same user is another identity.
//     "pbkdf2-sha256:" and 16 hex digits.
//
// Identity is derived with PBKDF2-HMAC-SHA256, Iterations rounds, salted
// with the principal's full hash, not with a plain hash: a secret may be a
// short password, and whoever can read the token API (any local caller on
// loopback) must not be able to test guesses at it offline at the speed of
// SHA-256. Salting by principal keeps one table of guesses from serving
// every user. The 64-bit truncation tells identities apart (a false match
// needs a 2^-64 accident) and no more. A keyed hash (HMAC with a key of
// the running credproxy) would be cheaper, but the command has no way to
// learn the key without trusting whoever answers.
package identity

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/secret"
)

// Iterations is PBKDF2's round count for Identity: OWASP's 2023 figure
// for PBKDF2-HMAC-SHA256, about 0.2 s of one core. A running credproxy
// pays it once per credential (Memo); `credproxy token` once per run, and
// only when a credproxy answered.
const Iterations = 600_000

// domain separates these hashes from any other use of the same inputs.
const domain = "credproxy route identity v1"

// Fingerprints are a route's identity fingerprints; see the package doc.
type Fingerprints struct {
	// Principal is "sha256:" and 16 hex digits; never empty for a route
	// with a kind.
	Principal string
	// Identity is "pbkdf2-sha256:" and 16 hex digits; empty when the
	// route has no credential configured (LoadPartial).
	Identity string
}

// Of computes r's fingerprints, reading its secret files. A credential
// that is configured but cannot be read is an error: the caller cannot
// know the identity.
func Of(r config.Route) (Fingerprints, error) {
	principal, secrets, err := inputs(r)
	if err != nil {
		return Fingerprints{}, err
	}
	return derive(principal, secrets)
}

// inputs returns the encodings of r's principal and of its credential,
// nil when none is configured.
func inputs(r config.Route) (principal, secrets []byte, err error) {
	principal = field(nil, "domain", domain)
	principal = field(principal, "kind", string(r.Auth))
	for _, f := range principalFields(r) {
		principal = field(principal, f[0], f[1])
	}
	creds := credentials(r)
	if !slices.ContainsFunc(creds, func(c credential) bool { return c.ref.IsSet() }) {
		return principal, nil, nil
	}
	for _, c := range creds {
		v := ""
		if c.ref.IsSet() {
			s, err := c.ref.Load()
			if err != nil {
				return nil, nil, fmt.Errorf("route %s: identity: %w", r.Name, err)
			}
			v = s.Reveal()
		}
		secrets = field(secrets, c.label, v)
	}
	return principal, secrets, nil
}

// derive hashes the encodings; secrets nil means no Identity.
func derive(principal, secrets []byte) (Fingerprints, error) {
	sum := sha256.Sum256(principal)
	fp := Fingerprints{Principal: "sha256:" + hex.EncodeToString(sum[:8])}
	if secrets == nil {
		return fp, nil
	}
	dk, err := pbkdf2.Key(sha256.New, string(secrets), sum[:], Iterations, 8)
	if err != nil {
		return Fingerprints{}, fmt.Errorf("identity: %w", err)
	}
	fp.Identity = "pbkdf2-sha256:" + hex.EncodeToString(dk)
	return fp, nil
}

// field appends label and value to b, each preceded by its length, so
// that no two lists of fields encode alike.
func field(b []byte, label, value string) []byte {
	b = binary.AppendUvarint(b, uint64(len(label)))
	b = append(b, label...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}

// principalFields are the label, value pairs of r's principal beside
// its kind: what decides whom the identity service issues the token to
// and what for, none of it secret.
func principalFields(r config.Route) [][2]string {
	oauth2 := [][2]string{
		{"token_url", urlString(r.TokenURL)}, {"client_id", r.ClientID}, {"audience", r.Audience},
		// Scopes never hold white space (SCOPES is split on it); their
		// order means nothing.
		{"scopes", strings.Join(slices.Sorted(slices.Values(r.Scopes)), " ")},
	}
	switch r.Auth {
	case config.KindCSPAPIToken:
		return [][2]string{{"csp_url", urlString(r.CSPURL)}}
	case config.KindCSPOAuthApp:
		return [][2]string{{"csp_url", urlString(r.CSPURL)}, {"client_id", r.CSPClientID}, {"org_id", r.CSPOrgID}}
	case config.KindSplunkSession:
		// The session is made at the API host, UPSTREAM or the realm's.
		return [][2]string{{"api_url", urlString(r.Upstream)}, {"email", r.SplunkEmail}, {"org_id", r.SplunkOrgID}}
	case config.KindOAuth2ClientCredential, config.KindOAuth2RefreshToken:
		return oauth2
	case config.KindOAuth2TokenExchange:
		return append(oauth2, [2]string{"subject_token_type", r.SubjectTokenType})
	}
	return nil // static: the token is the identity
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// credential is one secret of a route and its label in the encoding. The
// label is the slot, not the variable: a secret given inline to one
// process and by file to the other is the same identity.
type credential struct {
	label string
	ref   secret.Ref
}

// credentials are the secrets of r's kind, in a fixed order; the subject
// token of oauth2-token-exchange counts as one.
func credentials(r config.Route) []credential {
	switch r.Auth {
	case config.KindCSPAPIToken:
		return []credential{{"api_token", r.CSPAPIToken}}
	case config.KindCSPOAuthApp:
		return []credential{{"client_secret", r.CSPClientSecret}}
	case config.KindSplunkSession:
		return []credential{{"password", r.SplunkPassword}}
	case config.KindOAuth2ClientCredential:
		return []credential{{"client_secret", r.ClientSecret}}
	case config.KindOAuth2RefreshToken:
		return []credential{{"refresh_token", r.RefreshToken}, {"client_secret", r.ClientSecret}}
	case config.KindOAuth2TokenExchange:
		subject := secret.Ref{File: r.SubjectTokenFile, Var: r.Prefix + "SUBJECT_TOKEN_FILE"}
		return []credential{{"subject_token", subject}, {"client_secret", r.ClientSecret}}
	case config.KindStatic:
		return []credential{{"token", r.Static}}
	}
	return nil
}

// Memo is Of for a running credproxy: it keeps the last fingerprints and
// derives them again only when the credential (a secret file re-read at
// every call) has changed, since the derivation is slow on purpose. It is
// safe for concurrent use; concurrent callers during a derivation wait
// for it instead of repeating it.
type Memo struct {
	route config.Route
	// mu guards key and last, and is held through a derivation.
	mu sync.Mutex
	// key is the SHA-256 of the inputs last derived from; it lives only
	// in memory, beside the secrets themselves.
	key  [sha256.Size]byte
	last Fingerprints
}

// NewMemo returns a Memo for r.
func NewMemo(r config.Route) *Memo { return &Memo{route: r} }

// Fingerprints returns the route's fingerprints, as Of.
func (m *Memo) Fingerprints() (Fingerprints, error) {
	principal, secrets, err := inputs(m.route)
	if err != nil {
		return Fingerprints{}, err
	}
	key := sha256.Sum256(field(field(nil, "principal", string(principal)), "secrets", string(secrets)))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last.Principal != "" && key == m.key {
		return m.last, nil
	}
	fp, err := derive(principal, secrets)
	if err != nil {
		return Fingerprints{}, err
	}
	m.key, m.last = key, fp
	return fp, nil
}
