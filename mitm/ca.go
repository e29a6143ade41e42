package mitm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Leaf certificate lifetimes. Leaves are short-lived so that a leaked leaf
// key is worth little; they are re-signed well before they expire.
const (
	leafLifetime = 24 * time.Hour
	leafRenewal  = 4 * time.Hour // re-sign when less than this is left
	// leafBackdate tolerates clients whose clock is a little behind.
	leafBackdate = time.Hour
)

// DefaultCALifetime is how long a CA lives when CAOptions.Lifetime is
// zero: the CA of `credproxy ca init`, which clients install and keep.
// Two years, not ten: a CA key that leaks is worth its remaining life,
// and a rotation every two years is still rare enough to plan for.
const DefaultCALifetime = 2 * 365 * 24 * time.Hour

// CAOptions configures a new CA.
type CAOptions struct {
	// Name goes into the subject so that users can tell credproxy's CAs
	// apart in a trust store.
	Name string
	// Lifetime is how long the CA is valid from now; zero means
	// DefaultCALifetime.
	Lifetime time.Duration
	// Hosts, when not empty, confine the CA with critical X.509 name
	// constraints: it can vouch for these host names (and their
	// subdomains, as name constraints go) and these IP addresses, and
	// for nothing else, so that a stolen key or a CA trusted too widely
	// cannot impersonate any other site. Names are host names without
	// port or wildcard; IP literals are matched exactly.
	Hosts []string
}

// CA is the certificate authority that signs the leaf certificates of
// intercepted hosts in forward mode.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// LoadCA reads a CA certificate and its private key (PKCS#8, SEC 1 EC or
// PKCS#1 RSA) from PEM files.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("CA certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("CA certificate: not a CA (needs basicConstraints CA:TRUE and keyUsage certSign)")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("CA key does not match the CA certificate")
	}
	return &CA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("CA key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("CA key: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("CA key: unsupported key type %T (ECDSA or RSA)", key)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// NewCA creates a new ECDSA P-256 CA without name constraints, valid for
// DefaultCALifetime. name goes into its subject.
func NewCA(name string) (*CA, error) {
	return NewCAWith(CAOptions{Name: name})
}

// NewCAWith creates a new ECDSA P-256 CA as opts say. An invalid host in
// opts.Hosts is an error naming it.
func NewCAWith(opts CAOptions) (*CA, error) {
	if opts.Lifetime <= 0 {
		opts.Lifetime = DefaultCALifetime
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: opts.Name, Organization: []string{"credproxy"}},
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              now.Add(opts.Lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	if len(opts.Hosts) > 0 {
		if err := constrain(tmpl, opts.Hosts); err != nil {
			return nil, err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// unusedDomain is permitted when only IP addresses are: a name
// constraint of some DNS name is what forbids all the others, and names
// under .invalid never resolve (RFC 6761).
const unusedDomain = "invalid"

// constrain puts critical name constraints for hosts on tmpl: the DNS
// names permitted (with their subdomains), the IP addresses permitted
// exactly. A kind of name with no constraint would be unconstrained
// (RFC 5280 4.2.1.10), so each kind is always constrained: without IP
// hosts every IP address is excluded, without names only .invalid is
// permitted.
func constrain(tmpl *x509.Certificate, hosts []string) error {
	for _, h := range hosts {
		if err := CheckHost(h); err != nil {
			return err
		}
		if ip := net.ParseIP(h); ip != nil {
			bits := 8 * net.IPv6len
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 8*net.IPv4len
			}
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	if len(tmpl.PermittedDNSDomains) == 0 {
		tmpl.PermittedDNSDomains = []string{unusedDomain}
	}
	if len(tmpl.PermittedIPRanges) == 0 {
		tmpl.ExcludedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	tmpl.PermittedDNSDomainsCritical = true
	return nil
}

// hostHint says what CheckHost wants.
const hostHint = "write api.example.com: a name covers its subdomains, so no port, scheme or wildcard"

// CheckHost reports whether h can be a name constraint: an IP literal,
// or a DNS host name (letters, digits, hyphens and underscores, as
// credproxy's HOSTS allow; labels of 1 to 63 characters) with no port and
// no wildcard.
func CheckHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a host name or IP address", h)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a host name or IP address (%s)", h, hostHint)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name or IP address (%s)", h, hostHint)
			}
		}
	}
	return nil
}

// CertPEM returns the CA certificate in PEM, for clients to trust.
func (ca *CA) CertPEM() []byte { return ca.pem }

// Certificate returns the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Fingerprint is the SHA-256 fingerprint of the CA certificate, written
// as `openssl x509 -noout -fingerprint -sha256` writes it, so that an
// operator can tell from a log line which CA is in use. A certificate is
// public: this is no secret.
func (ca *CA) Fingerprint() string {
	sum := sha256.Sum256(ca.cert.Raw)
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(sum)*3-1)
	for i, b := range sum {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hexDigits[b>>4], hexDigits[b&0xf])
	}
	return string(out)
}

// WriteFiles writes ca.pem and ca-key.pem into dir; the key file is
// created with mode 0600 and never overwritten.
func (ca *CA) WriteFiles(dir string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return err
	}
	keyPath := filepath.Join(dir, "ca-key.pem")
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}); err != nil {
		f.Close()
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.pem, 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return n
}

func keyID(pub crypto.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

// Leaves signs and caches one leaf certificate per host name. Racing
// connections to a new host wait for one signature; a leaf is re-signed
// when less than leafRenewal of its life is left. It is safe for
// concurrent use.
type Leaves struct {
	ca  *CA
	now func() time.Time
	// signed counts signatures, for metrics and tests.
	signed atomic.Int64
	// onSign, when set, is called after each signature (metrics).
	onSign func()

	mu     sync.Mutex
	leaves map[string]*leafEntry
}

type leafEntry struct {
	once sync.Once
	cert *tls.Certificate
	err  error
}

// maxLeaves bounds the cache; route hosts are few, so reaching it means
// something is wrong, and the cache is simply emptied.
const maxLeaves = 4096

// NewLeaves returns an empty leaf cache signing with ca; onSign, when not
// nil, is called after each signature (a metric).
func NewLeaves(ca *CA, onSign func()) *Leaves {
	return &Leaves{ca: ca, now: time.Now, onSign: onSign, leaves: map[string]*leafEntry{}}
}

// Signed reports how many leaves have been signed.
func (s *Leaves) Signed() int64 { return s.signed.Load() }

// Get returns the leaf for host, signing it at most once per renewal.
func (s *Leaves) Get(host string) (*tls.Certificate, error) {
	s.mu.Lock()
	e := s.leaves[host]
	if e != nil && e.cert != nil && s.now().Add(leafRenewal).After(e.cert.Leaf.NotAfter) &&
		e.cert.Leaf.NotAfter.Before(s.ca.cert.NotAfter) {
		e = nil // due for re-signing (unless it already ends with the CA)
	}
	if e == nil {
		if len(s.leaves) >= maxLeaves {
			clear(s.leaves)
		}
		e = &leafEntry{}
		s.leaves[host] = e
	}
	s.mu.Unlock()
	e.once.Do(func() {
		cert, err := s.sign(host)
		// Under the lock: the renewal check above reads e.cert while
		// holding it, possibly while this signature is being made.
		s.mu.Lock()
		e.cert, e.err = cert, err
		s.mu.Unlock()
	})
	if e.err != nil {
		s.mu.Lock()
		if s.leaves[host] == e {
			delete(s.leaves, host) // retry next time
		}
		s.mu.Unlock()
	}
	return e.cert, e.err
}

func (s *Leaves) sign(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber:   randomSerial(),
		NotBefore:      now.Add(-leafBackdate),
		NotAfter:       now.Add(leafLifetime),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		AuthorityKeyId: s.ca.cert.SubjectKeyId,
	}
	// A leaf outlives no CA: a verifier would refuse it once the CA has
	// expired anyway, and this keeps every leaf inside the CA's life.
	if caEnd := s.ca.cert.NotAfter; tmpl.NotAfter.After(caEnd) {
		tmpl.NotAfter = caEnd
	}
	if ip := net.ParseIP(host); ip != nil {
		// No common name: OpenSSL checks a subject CN that looks like a
		// host name against the CA's DNS name constraints, and an IP
		// literal looks like one.
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.Subject = pkix.Name{CommonName: host}
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca.cert, &key.PublicKey, s.ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	s.signed.Add(1)
	if s.onSign != nil {
		s.onSign()
	}
	return &tls.Certificate{Certificate: [][]byte{der, s.ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
