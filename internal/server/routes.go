package server

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/admin"
	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/identity"
	"github.com/credproxy/credproxy/proxy"
	"github.com/credproxy/credproxy/tokenapi"
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
	// keys are CLIENT_KEYS_FILE's; nil without one.
	keys *edge.Keys
}

// routeMetrics are the metrics every route's components count on, each
// registered on the server's registry by the package that changes it.
type routeMetrics struct {
	tokens *tokencache.Metrics
	sinks  *tokensink.Metrics
	expiry *credexpiry.Metrics
	// audit records the routes' sink writes.
	audit *edge.Auditor
}

// newLiveRoute builds a route's exchange, its token cache (with its
// metrics), the watcher of its credential's expiry and what the proxy
// needs of it.
func newLiveRoute(rc config.Route, client *http.Client, m routeMetrics, log *zap.Logger) (*liveRoute, error) {
	src, err := NewSource(rc, client)
	if err != nil {
		return nil, err
	}
	expiry := newExpiryWatcher(rc, src, m.expiry, log)
	sink, onToken := newSink(rc, m.sinks, m.audit, log)
	cache := tokencache.New(src, tokencache.Options{
		Route:           rc.Name,
		Kind:            string(rc.Auth),
		RefreshAt:       rc.RefreshAt,
		ExpiryMargin:    rc.ExpiryMargin,
		TokenWait:       rc.TokenWait,
		ExchangeTimeout: rc.ExchangeTimeout,
		Logger:          log.Named("tokencache"),
		Metrics:         m.tokens,
		OnExchange:      credentialNews(rc, expiry, log.Named("exchange").With(zap.String("route", rc.Name))),
		OnToken:         onToken,
	})
	route, err := proxy.NewRoute(proxy.RouteOptions{
		Name:          rc.Name,
		Upstream:      rc.Upstream,
		Hosts:         rc.Hosts,
		Header:        rc.Header,
		Prefix:        rc.HeaderPrefix,
		AllowInsecure: rc.AllowInsecureUpstream,
		Tokens:        cache,
	})
	if err != nil {
		return nil, err
	}
	return &liveRoute{cfg: rc, cache: cache, sink: sink, expiry: expiry, route: route}, nil
}

// newExpiryWatcher builds the watcher of a route's long-lived credential:
// the configured CREDENTIAL_EXPIRES_AT and CSP's details lookup for
// csp-api-token; it feeds the route's gauge. The refresh_expires_in of
// oauth2-refresh-token's answers reaches it through credentialNews.
func newExpiryWatcher(rc config.Route, src exchange.Source, m *credexpiry.Metrics, log *zap.Logger) *credexpiry.Watcher {
	opts := credexpiry.Options{
		Route:         rc.Name,
		Kind:          string(rc.Auth),
		Configured:    rc.CredentialExpiresAt,
		LookupTimeout: rc.ExchangeTimeout,
		Logger:        log.Named("credexpiry"),
		Metrics:       m,
	}
	if l, ok := src.(credexpiry.Lookup); ok {
		opts.Lookup = l
	}
	return credexpiry.New(opts)
}

// credentialNews returns the route's tokencache OnExchange hook, which
// passes on what an exchange learnt of the long-lived credential
// (exchange.CredentialNews): a rotated refresh token to the log, an
// expiry the answer gave to the watcher.
func credentialNews(rc config.Route, w *credexpiry.Watcher, log *zap.Logger) func(tokencache.Exchange) {
	return func(e tokencache.Exchange) {
		n := e.Credential
		if n == nil {
			return
		}
		if n.Rotated != nil {
			logRotation(rc, log, n.Rotated)
		}
		if n.ExpiryReported {
			w.Observe(n.ExpiresAt)
		}
	}
}

// logRotation reports a rotated refresh token: written back to its file,
// kept in memory, or kept in memory because writing it failed.
func logRotation(rc config.Route, log *zap.Logger, r *exchange.Rotation) {
	switch {
	case r.Err != nil:
		log.Warn("refresh token rotated; kept in memory only, a restart will reuse the old one", zap.String("file", rc.RefreshToken.File), zap.Error(r.Err))
	case r.WrittenBack:
		log.Info("refresh token rotated and written back", zap.String("file", rc.RefreshToken.File))
	default:
		log.Info("refresh token rotated; kept in memory (set REFRESH_TOKEN_FILE to persist it)")
	}
}

// adminOptions are what the admin listener serves: every route's token
// state and credential expiry, the registry, the forward proxy's CA when
// there is one (caPEM), and the token endpoints when the token API is on.
func (s *Server) adminOptions(reg *prometheus.Registry, caPEM func() []byte, log *zap.Logger) admin.Options {
	opts := admin.Options{Registry: reg, CA: caPEM, AuditLog: s.cfg.AuditLog.String()}
	for _, r := range s.routes {
		upstream := ""
		if r.cfg.Upstream != nil {
			upstream = r.cfg.Upstream.Redacted()
		}
		opts.Routes = append(opts.Routes, admin.Route{Name: r.cfg.Name, Upstream: upstream, Listen: r.cfg.Listen,
			Status: r.cache.Status, Credential: r.expiry.Status, Edge: s.routeEdge(r.cfg)})
	}
	if s.cfg.TokenAPI {
		api := tokenapi.Options{Routes: s.tokenRoutes(), Metrics: tokenapi.NewMetrics(reg), Logger: log.Named("admin"), Record: s.audit.Record}
		opts.TokenAPI, opts.OAuth2 = tokenapi.NewTokenHandler(api), tokenapi.NewOAuth2Handler(api)
	}
	return opts
}

// routeEdge is what guards a route's callers, for the admin listener:
// client keys, request policy, peer check, and its denials as counted in
// credproxy_requests_denied_total.
func (s *Server) routeEdge(rc config.Route) admin.RouteEdge {
	name := rc.Name
	return admin.RouteEdge{
		Keys:   rc.ClientKeysFile != "",
		Policy: rc.Allow.Enabled(),
		Peers:  rc.AllowUIDs != nil || rc.AllowGIDs != nil,
		Denied: func() map[string]uint64 { return s.edge.DeniedCounts(name) },
	}
}

// tokenRoutes are the routes of the token endpoints: every route, its name
// the token API's path element and the OAuth 2.0 client_id, its client
// secret LOCAL_CLIENT_SECRET.
func (s *Server) tokenRoutes() []tokenapi.Route {
	var out []tokenapi.Route
	for _, r := range s.routes {
		id := identityFunc(r.cfg)
		// The identity's derivation is slow on purpose (identity: PBKDF2);
		// Serve derives it once at start, so that the first token API
		// answer does not pay for it.
		s.warm = append(s.warm, func() { _, _, _ = id() })
		out = append(out, tokenapi.Route{
			Name: r.cfg.Name, TokenType: r.cfg.HeaderPrefix, Tokens: r.cache,
			Identity: id, ClientSecret: r.cfg.LocalClientSecret,
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
