package proxy

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/credproxy/credproxy/internal/logtest"
)

// TestSelfGuardFailsClosedWithoutInterfaceList: when the machine's
// addresses cannot be listed (systemd's RestrictAddressFamilies without
// AF_NETLINK, a sandbox), a listener on an unspecified address cannot
// tell its own addresses from others, so every destination on its port
// is taken for it and refused; other ports are not. The reason is logged
// once at warn, not on every connection.
func TestSelfGuardFailsClosedWithoutInterfaceList(t *testing.T) {
	log, logs := logtest.New(t)
	calls := 0
	s := &selfAddrs{
		log: log,
		interfaceAddrs: func() ([]net.Addr, error) {
			calls++
			return nil, errors.New("netlinkrib: address family not supported by protocol")
		},
	}
	s.add(&net.TCPAddr{IP: net.IPv4zero, Port: 3128})
	s.add(&net.TCPAddr{IP: net.IPv6unspecified, Port: 9901})
	tcs := []struct {
		desc string
		ip   net.IP
		port int
		want bool
	}{
		{desc: "loopback, the listener's port", ip: net.IPv4(127, 0, 0, 1), port: 3128, want: true},
		{desc: "an address that may be this machine's, the listener's port", ip: net.IPv4(10, 1, 2, 3), port: 3128, want: true},
		{desc: "IPv6, the other listener's port", ip: net.ParseIP("fd00::1"), port: 9901, want: true},
		{desc: "another port", ip: net.IPv4(10, 1, 2, 3), port: 443, want: false},
		{desc: "loopback, another port", ip: net.IPv4(127, 0, 0, 1), port: 8443, want: false},
	}
	for _, tc := range tcs {
		if got := s.is(tc.ip, tc.port); got != tc.want {
			t.Errorf("%s: is(%s, %d) = %v, want %v", tc.desc, tc.ip, tc.port, got, tc.want)
		}
	}
	if calls == 0 {
		t.Error("the interface lister was never asked")
	}
	if n := strings.Count(logs.String(), "cannot list"); n != 1 {
		t.Errorf("the failure was logged %d times, want once at warn:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "AF_NETLINK") {
		t.Errorf("the warning does not say why at warn level:\n%s", logs.String())
	}
}

// TestSelfGuardListsInterfaces: with the lister working, an address of
// this machine on a wildcard listener's port is refused and another
// machine's is not.
func TestSelfGuardListsInterfaces(t *testing.T) {
	s := &selfAddrs{interfaceAddrs: func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.IPv4(10, 1, 2, 3), Mask: net.CIDRMask(24, 32)}}, nil
	}}
	s.add(&net.TCPAddr{IP: net.IPv4zero, Port: 3128})
	if !s.is(net.IPv4(10, 1, 2, 3), 3128) {
		t.Error("an interface address on the listener's port was not recognised")
	}
	if s.is(net.IPv4(10, 1, 2, 4), 3128) {
		t.Error("another machine's address on the listener's port was refused")
	}
}
