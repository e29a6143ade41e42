package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"testing"

	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/mitm"
)

// TestForwardSetCA: after SetCA, a new CONNECT gets a leaf signed by the
// new CA (not the old CA's cached leaf), while a tunnel intercepted
// before keeps serving on its connection.
func TestForwardSetCA(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	addr := s.up.srv.Listener.Addr().String()
	before, err := tryConnectThrough(s, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if err := before.ConnectionState().PeerCertificates[0].CheckSignatureFrom(s.ca.Certificate()); err != nil {
		t.Fatalf("leaf before SetCA: %v", err)
	}

	old := s.ca
	next, err := mitm.NewCA("credproxy test CA, rotated")
	if err != nil {
		t.Fatal(err)
	}
	s.fwd.SetCA(next)
	if s.fwd.CA() != next {
		t.Error("CA() does not return the CA just set")
	}
	s.ca = next // tryConnectThrough trusts s.ca
	after, err := tryConnectThrough(s, addr)
	if err != nil {
		t.Fatalf("CONNECT after SetCA, trusting the new CA: %v", err)
	}
	defer after.Close()
	leaf := after.ConnectionState().PeerCertificates[0]
	if err := leaf.CheckSignatureFrom(next.Certificate()); err != nil {
		t.Errorf("leaf after SetCA not signed by the new CA: %v", err)
	}
	if leaf.CheckSignatureFrom(old.Certificate()) == nil {
		t.Error("leaf after SetCA signed by the old CA")
	}
	if n := s.fwd.SignedLeaves(); n != 2 {
		t.Errorf("signed %d leaves, want one per CA", n)
	}

	// The tunnel from before the swap still carries requests.
	fmt.Fprintf(before, "GET /api/v2/x HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(before), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on the tunnel intercepted before SetCA: %v %v", resp, err)
	}
	resp.Body.Close()
}
