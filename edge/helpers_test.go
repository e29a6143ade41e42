package edge

import "crypto/tls"

// tlsState marks a request as received over TLS (an intercepted tunnel).
var tlsState = &tls.ConnectionState{HandshakeComplete: true}
