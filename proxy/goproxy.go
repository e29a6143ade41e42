package proxy

import (
	"net/http"

	"github.com/elazarl/goproxy"
	"go.uber.org/zap"
)

// newGoproxy returns the goproxy server behind f's listener: it answers
// CONNECTs (f.decide says whether to intercept, tunnel or refuse) and
// passes plain requests to hosts of no route through. Every field of
// goproxy.ProxyHttpServer is listed below, with why credproxy changes its
// default or keeps it; goproxy is used nowhere else.
func (f *Forward) newGoproxy(transport *Transport) *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()

	// Tr: the default skips TLS verification and takes its proxy from
	// HTTPS_PROXY, which a sidecar inherits from the scripts it serves
	// and which may be credproxy itself (a loop of CONNECTs until file
	// descriptors run out). Ours verifies, uses no proxy, and its dialer
	// refuses credproxy's own listeners. It is a pool of its own: a
	// route's connections are never shared with other traffic.
	others := transport.http1()
	others.DialContext = f.self.guard(others.DialContext)
	gp.Tr = others

	// ConnectDial: the default dials blind tunnels through HTTPS_PROXY
	// too (the same loop). Cleared, so that ConnectDialWithReq is used.
	gp.ConnectDial = nil
	// ConnectDialWithReq: blind tunnels are dialled directly, never to
	// credproxy's own listeners, and closed after TunnelIdleTimeout of
	// silence in both directions (goproxy sets no deadline).
	gp.ConnectDialWithReq = f.dialTunnel

	// Logger: the default writes to the process's stderr in log's
	// format; ours goes to the forward proxy's zap logger.
	gp.Logger = zap.NewStdLog(f.log.Named("goproxy"))
	// Verbose: off, goproxy's default, set to say so: it would log
	// every request; credproxy logs its own decisions instead.
	gp.Verbose = false

	// KeepAcceptEncoding: the default drops the client's
	// Accept-Encoding. credproxy passes bodies through byte for byte and
	// leaves compression to the client, as Transport does.
	gp.KeepAcceptEncoding = true

	// NonproxyHandler: the default answers a request in origin form
	// (GET /x: not a proxy request) 500 in plain text; ours is a 400 in
	// credproxy's JSON error body.
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusBadRequest, errorBody{Error: "not_a_proxy_request", Detail: "this is credproxy's forward proxy: send absolute-form requests or CONNECT"})
	})

	// Kept at their defaults:
	//   - CertStore (nil) and AllowHTTP2 (false) serve goproxy's own MITM
	//     loop, which is not used: an intercepted CONNECT is hijacked
	//     (f.decide) and its connection served by f.mitm, which signs
	//     with mitm.Leaves and speaks HTTP/2.
	//   - KeepHeader (false): Proxy-Authorization is not sent on (the
	//     forward proxy removes it itself too, see authorized).
	//   - KeepDestinationHeaders (false) and PreventCanonicalization
	//     (false): goproxy's usual handling of a passed-through answer's
	//     and request's headers.
	//   - ConnectionErrHandler (nil): a tunnel that cannot be dialled
	//     gets goproxy's 502 with the dial error (an address, never a
	//     credential: blind tunnels carry none).
	gp.OnRequest().HandleConnectFunc(f.decide)
	return gp
}
