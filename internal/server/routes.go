package server

import (
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/admin"
	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/identity"
	"github.com/credproxy/credproxy/proxy"
	"github.com/credproxy/credproxy/tokencache"
	"github.com/credproxy/credproxy/tokensink"
)

// NewSource returns the exchange for a route's credential kind. The check
// and token commands use it for their one exchange.
func NewSource(rc config.Route, client *http.Client) (exchange.Source, error) {
	switch rc.Auth {
	case config.KindCSPAPIToken:
		return &exchange.CSPAPIToken{BaseURL: rc.CSPURL, APIToken: rc.CSPAPIToken, Client: client, DefaultTTL: rc.DefaultTTL}, nil
	case config.KindCSPOAuthApp:
		return &exchange.CSPOAuthApp{BaseURL: rc.CSPURL, ClientID: rc.CSPClientID, ClientSecret: rc.CSPClientSecret, OrgID: rc.CSPOrgID, Client: client, DefaultTTL: rc.DefaultTTL}, nil
	case config.KindStatic:
		return &exchange.Static{Token: rc.Static}, nil
	case config.KindSplunkSession:
		return &exchange.SplunkSession{BaseURL: rc.Upstream, Email: rc.SplunkEmail, Password: rc.SplunkPassword, OrgID: rc.SplunkOrgID, Client: client, DefaultTTL: rc.DefaultTTL}, nil
	case config.KindOAuth2ClientCredential:
		return &exchange.OAuth2ClientCredentials{OAuth2Client: oauth2Client(rc, client)}, nil
	case config.KindOAuth2RefreshToken:
		return &exchange.OAuth2RefreshToken{OAuth2Client: oauth2Client(rc, client), RefreshToken: rc.RefreshToken}, nil
	case config.KindOAuth2TokenExchange:
		return &exchange.OAuth2TokenExchange{OAuth2Client: oauth2Client(rc, client), SubjectTokenFile: rc.SubjectTokenFile, SubjectTokenType: rc.SubjectTokenType}, nil
	}
	// config.Load refuses kinds without an exchange; reaching this is a bug.
	return nil, fmt.Errorf("route %s: credential kind %q has no exchange", rc.Name, rc.Auth)
}

func oauth2Client(rc config.Route, client *http.Client) exchange.OAuth2Client {
	return exchange.OAuth2Client{
		TokenURL: rc.TokenURL.String(), ClientID: rc.ClientID, ClientSecret: rc.ClientSecret,
		AuthStyleBody: rc.AuthStyle == config.AuthStyleBody, Scopes: rc.Scopes, Audience: rc.Audience,
		Client: client, DefaultTTL: rc.DefaultTTL,
	}
}

// liveRoute is one route as it runs: its configuration, token cache,
// credential-expiry watcher, sink, and what the proxy needs of it.
type liveRoute struct {
	cfg    config.Route
	cache  *tokencache.Cache
	route  *proxy.Route
	expiry *credexpiry.Watcher
	// sink keeps the token in TOKEN_SINK_FILE; nil without one.
	sink *tokensink.Sink
}

// newLiveRoute builds a route's exchange, its token cache (with its
// metrics) and what the proxy needs of it.
func newLiveRoute(rc config.Route, client *http.Client, m *admin.Metrics, log *zap.Logger) (*liveRoute, error) {
	src, err := NewSource(rc, client)
	if err != nil {
		return nil, err
	}
	if rt, ok := src.(*exchange.OAuth2RefreshToken); ok {
		rt.OnRotate = logRotation(rc, log.Named("exchange").With(zap.String("route", rc.Name)))
	}
	sink, onToken := newSink(rc, m, log)
	cache := tokencache.New(src, tokencache.Options{
		Route:           rc.Name,
		Kind:            string(rc.Auth),
		RefreshAt:       rc.RefreshAt,
		ExpiryMargin:    rc.ExpiryMargin,
		TokenWait:       rc.TokenWait,
		ExchangeTimeout: rc.ExchangeTimeout,
		Logger:          log.Named("tokencache"),
		OnExchange:      m.ObserveExchange(rc.Name, string(rc.Auth)),
		OnToken:         onToken,
	})
	m.WatchRoute(rc.Name, cache.Status)
	return &liveRoute{cfg: rc, cache: cache, sink: sink, expiry: newExpiryWatcher(rc, src, m, log), route: &proxy.Route{
		Name:          rc.Name,
		Upstream:      rc.Upstream,
		Hosts:         rc.Hosts,
		Header:        rc.Header,
		Prefix:        rc.HeaderPrefix,
		AllowInsecure: rc.AllowInsecureUpstream,
		Tokens:        cache,
	}}, nil
}

// newExpiryWatcher builds the watcher of a route's long-lived credential:
// the configured CREDENTIAL_EXPIRES_AT, CSP's details lookup for
// csp-api-token, and the refresh_expires_in of oauth2-refresh-token's
// answers; it feeds the route's gauge.
func newExpiryWatcher(rc config.Route, src exchange.Source, m *admin.Metrics, log *zap.Logger) *credexpiry.Watcher {
	opts := credexpiry.Options{
		Route:         rc.Name,
		Kind:          string(rc.Auth),
		Configured:    rc.CredentialExpiresAt,
		LookupTimeout: rc.ExchangeTimeout,
		Logger:        log.Named("credexpiry"),
		OnChange:      m.CredentialExpiry(rc.Name),
	}
	if l, ok := src.(credexpiry.Lookup); ok {
		opts.Lookup = l
	}
	w := credexpiry.New(opts)
	if rt, ok := src.(*exchange.OAuth2RefreshToken); ok {
		rt.OnCredentialExpiry = w.Observe
	}
	return w
}

// logRotation reports a rotated refresh token: written back to its file,
// kept in memory, or kept in memory because writing it failed.
func logRotation(rc config.Route, log *zap.Logger) func(written bool, err error) {
	return func(written bool, err error) {
		switch {
		case err != nil:
			log.Warn("refresh token rotated; kept in memory only, a restart will reuse the old one", zap.String("file", rc.RefreshToken.File), zap.Error(err))
		case written:
			log.Info("refresh token rotated and written back", zap.String("file", rc.RefreshToken.File))
		default:
			log.Info("refresh token rotated; kept in memory (set REFRESH_TOKEN_FILE to persist it)")
		}
	}
}

// serveAdminPages adds the status page, and the token API when it is on.
func (s *Server) serveAdminPages(log *zap.Logger) {
	var page []admin.StatusRoute
	var routes []admin.TokenRoute
	for _, r := range s.routes {
		upstream := ""
		if r.cfg.Upstream != nil {
			upstream = r.cfg.Upstream.Redacted()
		}
		page = append(page, admin.StatusRoute{Name: r.cfg.Name, Upstream: upstream, Listen: r.cfg.Listen, Status: r.cache.Status})
		routes = append(routes, admin.TokenRoute{Name: r.cfg.Name, TokenType: r.cfg.HeaderPrefix, Tokens: r.cache, Identity: identityFunc(r.cfg)})
		s.admin.ReportCredentialExpiry(r.cfg.Name, r.expiry.Status)
	}
	s.admin.EnableStatusPage(page)
	if s.cfg.TokenAPI {
		s.admin.EnableTokenAPI(routes, log.Named("admin"))
		s.admin.EnableOAuth2(s.oauth2Routes(), log.Named("admin"))
	}
}

// oauth2Routes are the routes of the local OAuth 2.0 token endpoint: every
// route, its client_id its name, its client secret LOCAL_CLIENT_SECRET.
func (s *Server) oauth2Routes() []admin.OAuth2Route {
	var out []admin.OAuth2Route
	for _, r := range s.routes {
		out = append(out, admin.OAuth2Route{
			TokenRoute:   admin.TokenRoute{Name: r.cfg.Name, TokenType: r.cfg.HeaderPrefix, Tokens: r.cache},
			ClientSecret: r.cfg.LocalClientSecret,
		})
	}
	return out
}

// identityFunc answers a route's identity fingerprints for the token
// API, derived again only when its credential changes.
func identityFunc(rc config.Route) func() (principal, id string, err error) {
	m := identity.NewMemo(rc)
	return func() (string, string, error) {
		fp, err := m.Fingerprints()
		return fp.Principal, fp.Identity, err
	}
}
