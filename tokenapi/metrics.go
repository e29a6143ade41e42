package tokenapi

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count the requests to the token API and to the local OAuth 2.0
// token endpoint, registered once on the registry the caller passes
// (Options.Metrics). A nil *Metrics counts nothing. No label ever holds
// a token or a secret: an unknown route or client is counted with an
// empty route.
type Metrics struct {
	// tokenRequests counts token API requests by route and status.
	tokenRequests *prometheus.CounterVec
	// oauth2Requests counts local OAuth 2.0 token requests by route and
	// result.
	oauth2Requests *prometheus.CounterVec
}

// NewMetrics creates the endpoints' metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_token_api_requests_total",
			Help: "Requests to the token API (GET /v1/token/<route>) by route (empty for an unknown route) and status code.",
		}, []string{"route", "status"}),
		oauth2Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_oauth2_token_requests_total",
			Help: "Requests to the local OAuth 2.0 token endpoint (POST /oauth2/token) by route (empty for an unknown client) and result: ok, forbidden (a caller guard refused it), or the RFC 6749 error answered (invalid_request, invalid_client, unsupported_grant_type, temporarily_unavailable).",
		}, []string{"route", "result"}),
	}
	reg.MustRegister(m.tokenRequests, m.oauth2Requests)
	return m
}

func (m *Metrics) tokenRequest(route string, status int) {
	if m != nil {
		m.tokenRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	}
}

func (m *Metrics) oauth2Request(route, result string) {
	if m != nil {
		m.oauth2Requests.WithLabelValues(route, result).Inc()
	}
}
