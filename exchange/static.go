package exchange

import (
	"context"
	"fmt"

	"github.com/credproxy/credproxy/internal/secret"
)

// Static serves a token that needs no exchange: a legacy Wavefront API
// token, a Splunk org access token. The token has no expiry; when it comes
// from a file, tokencache re-reads it periodically and after an upstream
// 401, so a rotated Secret is picked up.
type Static struct {
	Token secret.Ref
}

var _ Source = (*Static)(nil)

// Fetch returns the configured token.
func (s *Static) Fetch(context.Context) (Token, error) {
	tok, err := s.Token.Load()
	if err != nil {
		return Token{}, fmt.Errorf("static token: %w", err)
	}
	if err := checkToken(tok.Reveal()); err != nil {
		return Token{}, fmt.Errorf("static token from %s: %w", s.Token.Var, err)
	}
	return Token{Value: tok}, nil
}
