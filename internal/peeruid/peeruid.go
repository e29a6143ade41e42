package peeruid

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ErrNotFound is returned when no live socket of the connection's client
// is in the kernel's tables.
var ErrNotFound = errors.New("peeruid: the client's socket was not found")

// tables are the kernel's TCP socket tables, IPv4 and IPv6. A client on
// an IPv6 socket talking to an IPv4 listener (a v4-mapped address) is in
// the second.
var tables = [...]string{"/proc/net/tcp", "/proc/net/tcp6"}

// TCP returns the uid that owns the client's socket of the TCP connection
// whose server side has address local and whose client has address
// remote (net.Conn's LocalAddr and RemoteAddr on the server). The
// client's entry is the one whose local address is remote and whose
// remote address is local; the server's own entry (the accepted socket)
// is the reverse and is never taken for it.
//
// It reads the tables on every call: a port is reused by any user once a
// connection has closed, so an answer must never be cached beyond the
// connection it was asked for.
func TCP(local, remote net.Addr) (uint32, error) {
	l, err := addrPort(local)
	if err != nil {
		return 0, err
	}
	r, err := addrPort(remote)
	if err != nil {
		return 0, err
	}
	for _, name := range tables {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("peeruid: %w", err)
		}
		uid, found, err := find(f, r, l)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("peeruid: %s: %w", name, err)
		}
		if found {
			return uid, nil
		}
	}
	return 0, ErrNotFound
}

// addrPort is a TCP address with any IPv4-mapped IPv6 address unmapped,
// so that both tables compare alike.
func addrPort(a net.Addr) (netip.AddrPort, error) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.AddrPort{}, fmt.Errorf("peeruid: %v is not a TCP address", a)
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// liveStates are the TCP states (the st column, in hex) of a socket that
// a process still holds. A socket in TIME_WAIT (06) belongs to nobody any
// more, and its table row shows uid 0: taking it would answer "root".
var liveStates = map[string]bool{
	"01": true, // ESTABLISHED
	"04": true, // FIN_WAIT1
	"05": true, // FIN_WAIT2
	"08": true, // CLOSE_WAIT
}

// maxTable caps how much of a table is read.
const maxTable = 64 << 20

// find scans one table for the live socket whose local address is
// sockLocal and remote address sockRemote.
func find(r io.Reader, sockLocal, sockRemote netip.AddrPort) (uid uint32, found bool, err error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxTable))
	first := true
	for sc.Scan() {
		if first { // the header line
			first = false
			continue
		}
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
		f := strings.Fields(sc.Text())
		if len(f) < 8 || !liveStates[f[3]] {
			continue
		}
		la, err1 := parseAddr(f[1])
		ra, err2 := parseAddr(f[2])
		if err1 != nil || err2 != nil {
			return 0, false, fmt.Errorf("unreadable row %q", sc.Text())
		}
		if la != sockLocal || ra != sockRemote {
			continue
		}
		n, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return 0, false, fmt.Errorf("unreadable uid in row %q", sc.Text())
		}
		return uint32(n), true, nil
	}
	return 0, false, sc.Err()
}

// parseAddr parses a table's ADDR:PORT. The address is the kernel's
// in-memory bytes printed as 32-bit words in host order (little-endian
// on the machines this runs on: Linux reads of native endianness), the
// port a plain hex number.
func parseAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, errors.New("no port")
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, errors.New("bad address")
	}
	// Each 32-bit word was printed as a number: put its bytes back in
	// memory order.
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
