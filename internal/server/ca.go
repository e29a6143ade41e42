package server

import (
	"fmt"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/mitm"
)

// RunCALifetime is how long the ephemeral CA of a served credproxy lives
// (Options.CALifetime's default). An ephemeral CA is kept by no file: its
// key lives in the process's memory only, so a CA certificate that
// outlives the process is trust in a key nobody should hold. Name
// constraints (routeHosts) bound where such a certificate is worth
// anything; the lifetime bounds how long.
//
// Clients of `run` fetch /ca.pem at each start of the process, and
// processes are restarted (deploys, node upgrades, pod rescheduling) well
// within a month. Past it, interception fails with an expired CA rather
// than trusting an old key for ever: a process meant to run longer wants
// `credproxy ca init` files.
const RunCALifetime = 30 * 24 * time.Hour

// loadCA loads the configured forward-proxy CA, or makes an ephemeral one
// valid for lifetime, confined to the route hosts, whose certificate is
// served at /ca.pem.
func loadCA(cfg *config.Config, lifetime time.Duration, log *zap.Logger) (*mitm.CA, error) {
	if cfg.CACertFile != "" {
		ca, err := mitm.LoadCA(cfg.CACertFile, cfg.CAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("CREDPROXY_CA_CERT_FILE, CREDPROXY_CA_KEY_FILE: %w", err)
		}
		log.Info("forward-proxy CA loaded", zap.String("subject", ca.Certificate().Subject.String()), zap.String("fingerprint", ca.Fingerprint()))
		return ca, nil
	}
	hosts := routeHosts(cfg.Routes)
	ca, err := mitm.NewCAWith(mitm.CAOptions{
		Name:     "credproxy ephemeral CA " + time.Now().UTC().Format(time.RFC3339),
		Lifetime: lifetime,
		Hosts:    hosts,
	})
	if err != nil {
		return nil, fmt.Errorf("create ephemeral CA: %w", err)
	}
	log.Info("forward-proxy CA created for this process; clients must trust GET /ca.pem from the admin listener",
		zap.Strings("hosts", hosts), zap.Time("not_after", ca.Certificate().NotAfter))
	return ca, nil
}

// routeHosts are the hosts the forward proxy intercepts, without ports:
// each route's UPSTREAM host and its HOSTS.
func routeHosts(routes []config.Route) []string {
	seen := map[string]bool{}
	var hosts []string
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	for _, rc := range routes {
		if rc.Upstream != nil {
			add(strings.ToLower(rc.Upstream.Hostname()))
		}
		for _, h := range rc.Hosts {
			if host, _, err := net.SplitHostPort(h); err == nil {
				h = host
			}
			add(strings.Trim(strings.ToLower(h), "[]"))
		}
	}
	return hosts
}

// reloadCA loads the forward proxy's CA files again and, when they hold
// another CA, makes it sign the leaves of new interceptions
// (proxy.Forward.SetCA). A CA that fails to load is logged as an error
// and the one in use is kept. An ephemeral CA (no CA files) is kept.
func (s *Server) reloadCA() {
	if s.forward == nil {
		return
	}
	if s.cfg.CACertFile == "" {
		s.log.Info("forward-proxy CA kept: it is this process's own (no CREDPROXY_CA_CERT_FILE to reload)")
		return
	}
	old := s.forward.CA()
	ca, err := mitm.LoadCA(s.cfg.CACertFile, s.cfg.CAKeyFile)
	if err != nil {
		s.log.Error("forward-proxy CA not reloaded; the one in use is kept",
			zap.Error(fmt.Errorf("CREDPROXY_CA_CERT_FILE, CREDPROXY_CA_KEY_FILE: %w", err)),
			zap.String("fingerprint", old.Fingerprint()))
		return
	}
	if ca.Certificate().Equal(old.Certificate()) {
		s.log.Info("forward-proxy CA unchanged", zap.String("fingerprint", old.Fingerprint()))
		return
	}
	s.forward.SetCA(ca)
	s.log.Info("forward-proxy CA reloaded: new intercepted connections get leaves it signs",
		zap.String("subject", ca.Certificate().Subject.String()),
		zap.String("fingerprint", ca.Fingerprint()),
		zap.String("previous_fingerprint", old.Fingerprint()))
}
