package edge

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of a keys file.
const (
	// MinKeyLen is the shortest key accepted, in bytes: a client key
	// stands in for a credential and must not be guessable.
	MinKeyLen = 16
	// MaxKeyNameLen is the longest key name accepted.
	MaxKeyNameLen = 64
	// maxKeysFileSize bounds what is read of a keys file, so that a
	// misconfigured path (a log, a device) is not read whole.
	maxKeysFileSize = 1 << 20
)

// KeySet is the parsed content of a keys file: names and the SHA-256
// digests of their keys (the keys themselves are not kept). It is
// immutable, so any number of goroutines may use it at once.
type KeySet struct {
	entries []keyEntry
}

type keyEntry struct {
	name   string
	digest [sha256.Size]byte
}

// ParseKeysFile reads and parses a keys file (CLIENT_KEYS_FILE,
// CREDPROXY_FORWARD_KEYS_FILE). The format, one key per line:
//
//	# comment lines and blank lines are ignored
//	ci-runner:3f9a0c7e5b1d4a2f8e6c
//	b27d90e1c4f5a6b3d8e2
//
// A line is "name:key" (split at the first ':', white space around
// either part removed) or a bare key, whose name is "key" and its line
// number ("key3"): line numbers move when the file is edited, so give
// keys names when the audit log must name them stably. A key that holds
// ':' must be given a name. Names are 1 to 64 of A-Z a-z 0-9 . _ -, so
// they are safe in logs and metrics; keys are at least 16 bytes of
// printable ASCII without white space. Names and keys must be unique.
//
// Errors name the file and the line, never a key, and are meant to be
// prefixed with the variable's name.
func ParseKeysFile(path string) (*KeySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read keys file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeysFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read keys file %s: %w", path, err)
	}
	if len(b) > maxKeysFileSize {
		return nil, fmt.Errorf("keys file %s is larger than %d bytes", path, maxKeysFileSize)
	}
	return parseKeys(b, path)
}

// parseKeys parses a keys file's content; path is for errors only.
func parseKeys(b []byte, path string) (*KeySet, error) {
	var s KeySet
	nameLine := map[string]int{}
	keyLine := map[[sha256.Size]byte]int{}
	for i, raw := range bytes.Split(b, []byte("\n")) {
		n := i + 1
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' {
			continue
		}
		name, key, named := strings.Cut(line, ":")
		if !named {
			name, key = "key"+strconv.Itoa(n), line
		}
		name, key = strings.TrimSpace(name), strings.TrimSpace(key)
		if err := checkKey(name, key); err != nil {
			return nil, fmt.Errorf("keys file %s line %d: %w", path, n, err)
		}
		e := keyEntry{name: name, digest: sha256.Sum256([]byte(key))}
		if first, dup := nameLine[name]; dup {
			return nil, fmt.Errorf("keys file %s line %d: the name %q is also on line %d", path, n, name, first)
		}
		if first, dup := keyLine[e.digest]; dup {
			return nil, fmt.Errorf("keys file %s line %d: the same key as on line %d", path, n, first)
		}
		nameLine[name], keyLine[e.digest] = n, n
		s.entries = append(s.entries, e)
	}
	if len(s.entries) == 0 {
		return nil, fmt.Errorf("keys file %s holds no keys", path)
	}
	return &s, nil
}

// checkKey validates a name and its key; its errors quote neither, since
// a malformed name may be a piece of a key.
func checkKey(name, key string) error {
	if !validKeyName(name) {
		return fmt.Errorf("the name before ':' must be 1 to %d of A-Z a-z 0-9 . _ - (a key that holds ':' needs a name)", MaxKeyNameLen)
	}
	if key == "" {
		return errors.New("no key after the name")
	}
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r':
			return errors.New("the key holds white space")
		case c < 0x21 || c > 0x7e:
			return errors.New("the key holds a character other than printable ASCII")
		}
	}
	if len(key) < MinKeyLen {
		return fmt.Errorf("the key is shorter than %d bytes", MinKeyLen)
	}
	return nil
}

// validKeyName reports whether name is 1 to MaxKeyNameLen of
// [A-Za-z0-9._-].
func validKeyName(name string) bool {
	if name == "" || len(name) > MaxKeyNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Len returns the number of keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// Names returns the keys' names in file order.
func (s *KeySet) Names() []string {
	var names []string
	for _, e := range s.entries {
		names = append(names, e.name)
	}
	return names
}

// Lookup returns the name of the key presented, and false when it is
// none of s's keys (or empty). The presented value is hashed and its
// digest compared with every key's digest in constant time, without
// stopping at a match: how long Lookup takes says nothing about the
// keys, their lengths, or which one matched.
func (s *KeySet) Lookup(presented string) (name string, ok bool) {
	if s == nil || presented == "" {
		return "", false
	}
	d := digest(presented)
	found, at := 0, 0
	for i := range s.entries {
		eq := subtle.ConstantTimeCompare(d[:], s.entries[i].digest[:])
		at = subtle.ConstantTimeSelect(eq, i, at)
		found |= eq
	}
	if found == 0 {
		return "", false
	}
	return s.entries[at].name, true
}

// digest hashes v without a heap allocation for values up to 256 bytes
// (every sensible key).
func digest(v string) [sha256.Size]byte {
	var buf [256]byte
	if len(v) <= len(buf) {
		return sha256.Sum256(append(buf[:0], v...))
	}
	return sha256.Sum256([]byte(v))
}

// KeysOptions configure NewKeys.
type KeysOptions struct {
	// File is the keys file's path (required).
	File string
	// CheckEvery is how often, at most, a Lookup looks at the file to see
	// whether it changed (0: every second).
	CheckEvery time.Duration
	// OnReload, when set, is called after every attempt to re-read a file
	// that changed: with the number of keys now in use and nil when the new
	// file took effect, or with the number of old keys kept and the reason
	// when it did not. A failure is reported once per change of the file
	// (or of the error, for a file that cannot be looked at), not at every
	// check. It is called from the Lookup (or Reload) that noticed, one
	// call at a time, so it must be quick; its error never holds a key.
	OnReload func(keys int, err error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Keys is a keys file kept current: a Lookup that comes at least
// CheckEvery after the last check stats the file and, when its identity
// (device and inode), size or modification time changed, parses it
// again, before answering. A rotated file (rewritten, or swapped by
// rename or by the kubelet's symlink) takes effect within a second of the
// first request after it, without a restart and without a goroutine to
// manage; an idle proxy does not look at the file at all. A file that
// cannot be read or parsed keeps the old keys and is reported through
// OnReload.
//
// Checking from Lookup rather than from a watcher goroutine keeps Keys a
// value with no lifecycle (nothing to start or stop), costs one stat per
// second under load, and means a request never sees keys older than
// CheckEvery plus the time of one read. Only one Lookup at a time checks
// (a TryLock): the others answer at once with the keys they have, so no
// request ever waits for another's file read.
//
// Keys is safe for concurrent use. The current KeySet is published
// through an atomic pointer: Lookup takes no lock unless it is the one
// checking the file.
type Keys struct {
	file     string
	every    int64 // nanoseconds
	now      func() time.Time
	onReload func(int, error)

	cur atomic.Pointer[keysState]
	// next is when the file may next be checked, in Unix nanoseconds.
	next atomic.Int64

	// mu serialises checks and reloads, and guards what they remember:
	// tried (the file last parsed, so a broken file is parsed and
	// reported once, not every second) and lastErr (so a file that cannot
	// be statted is reported once per distinct error).
	mu      sync.Mutex
	tried   os.FileInfo
	lastErr string
}

// keysState is a KeySet and the file it was read from.
type keysState struct {
	set  *KeySet
	info os.FileInfo
}

// NewKeys reads opts.File and returns Keys that follow it. An error (the
// file unreadable or malformed, see ParseKeysFile) is a configuration
// error.
func NewKeys(opts KeysOptions) (*Keys, error) {
	if opts.File == "" {
		return nil, errors.New("no keys file")
	}
	k := &Keys{file: opts.File, every: int64(opts.CheckEvery), now: opts.Now, onReload: opts.OnReload}
	if k.every <= 0 {
		k.every = int64(time.Second)
	}
	if k.now == nil {
		k.now = time.Now
	}
	info, err := os.Stat(k.file)
	if err != nil {
		return nil, fmt.Errorf("read keys file: %w", err)
	}
	set, err := ParseKeysFile(k.file)
	if err != nil {
		return nil, err
	}
	k.cur.Store(&keysState{set: set, info: info})
	k.tried = info
	k.next.Store(k.now().UnixNano() + k.every)
	return k, nil
}

// Lookup returns the name of the key presented, and false when it is not
// one of the current keys (see KeySet.Lookup), after checking the file
// if it is time to.
func (k *Keys) Lookup(presented string) (name string, ok bool) {
	if k == nil {
		return "", false
	}
	if now := k.now().UnixNano(); now >= k.next.Load() && k.mu.TryLock() {
		if now >= k.next.Load() {
			k.next.Store(now + k.every)
			_ = k.reloadLocked(false)
		}
		k.mu.Unlock()
	}
	return k.cur.Load().set.Lookup(presented)
}

// Current returns the keys in use (nil for a nil *Keys).
func (k *Keys) Current() *KeySet {
	if k == nil {
		return nil
	}
	return k.cur.Load().set
}

// Reload reads the file now, changed or not (for SIGHUP, say), and
// returns what it would report to OnReload.
func (k *Keys) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(true)
}

// reloadLocked re-reads the file when it changed since it was last
// parsed (or always, when force), reporting the outcome. k.mu is held.
func (k *Keys) reloadLocked(force bool) error {
	info, err := os.Stat(k.file)
	if err != nil {
		err = fmt.Errorf("read keys file: %w", err)
		if msg := err.Error(); msg != k.lastErr {
			k.lastErr = msg
			k.report(k.cur.Load().set.Len(), err)
		}
		return err
	}
	if !force && sameFileVersion(info, k.tried) {
		return nil
	}
	k.tried, k.lastErr = info, ""
	set, err := ParseKeysFile(k.file)
	if err != nil {
		k.report(k.cur.Load().set.Len(), err)
		return err
	}
	k.cur.Store(&keysState{set: set, info: info})
	k.report(set.Len(), nil)
	return nil
}

func (k *Keys) report(n int, err error) {
	if k.onReload != nil {
		k.onReload(n, err)
	}
}

// sameFileVersion reports whether a and b describe the same file with the
// same size and modification time.
func sameFileVersion(a, b os.FileInfo) bool {
	return b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// PresentedKey returns the key a request carries in its header named
// header (the route's HEADER), after prefix and one space when prefix is
// not empty (HEADER_PREFIX, compared without regard to case as
// authentication schemes are): ("Authorization", "Bearer") reads
// "Authorization: Bearer <key>", ("X-Sf-Token", "") reads the whole
// value. White space around the key is ignored. It returns false when
// the header is missing, empty, sent more than once (which of two values
// would count is ambiguous), or lacks the prefix.
func PresentedKey(h http.Header, header, prefix string) (string, bool) {
	vals := h.Values(header)
	if len(vals) != 1 {
		return "", false
	}
	v := vals[0]
	if prefix != "" {
		if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) || v[len(prefix)] != ' ' {
			return "", false
		}
		v = v[len(prefix)+1:]
	}
	v = strings.Trim(v, " \t")
	return v, v != ""
}

// PresentedProxyKey returns the key a request to the forward listener
// carries in "Proxy-Authorization: Basic base64(user:key)", which is what
// clients send for HTTPS_PROXY=http://user:key@host:port. The password is
// the key; the user name is ignored (any, or empty): the key alone
// identifies its name, so a user name would add no security, and
// requiring it to equal the name would break clients whenever a key is
// renamed. It returns false when the header is missing, sent twice, not
// Basic, not valid base64, or has an empty password.
func PresentedProxyKey(h http.Header) (string, bool) {
	v, ok := PresentedKey(h, "Proxy-Authorization", "Basic")
	if !ok {
		return "", false
	}
	dec, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", false
	}
	_, key, ok := bytes.Cut(dec, []byte(":"))
	if !ok || len(key) == 0 {
		return "", false
	}
	return string(key), true
}
