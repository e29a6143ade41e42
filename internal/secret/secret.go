// Package secret carries credentials through credproxy in a type that cannot
// be logged, printed or marshalled by mistake.
//
// A Secret formats as a short fingerprint ("sha256:1a2b") everywhere: fmt
// verbs, zap fields, JSON and text marshalling. The only way to the value is
// Reveal, so every place that puts a credential on the wire is greppable.
package secret

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap/zapcore"
)

// Secret is a credential or token value. Its zero value is the empty
// secret. Make one with New.
//
// The bytes sit behind a pointer, never in a field of string type: fmt
// prints an unexported field by reflection without calling its String or
// Format method, and a struct holding a Secret that way (tokencache's
// state, say) printed with %+v then shows a nested pointer as an address,
// not the value. A Secret is not comparable with == (the zero-length
// array of funcs sees to that), since that would compare the pointers:
// use Equal.
type Secret struct {
	_ [0]func()
	v *string
}

// New returns a Secret holding s. New("") is the empty secret.
func New(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{v: &s}
}

// Reveal returns the value itself. Call it only where the value goes on the
// wire to the service it belongs to.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// Empty reports whether s holds no value.
func (s Secret) Empty() bool { return s.Reveal() == "" }

// Equal reports whether s and o hold the same value (the zero Secret and
// New("") are equal).
func (s Secret) Equal(o Secret) bool { return s.Reveal() == o.Reveal() }

// Fingerprint returns "sha256:" and the first 4 hex digits of the SHA-256 of
// the value: enough to tell two tokens apart in a log, far too little to
// recover or brute-force one. The empty secret prints as "empty".
func (s Secret) Fingerprint() string {
	if s.Empty() {
		return "empty"
	}
	sum := sha256.Sum256([]byte(s.Reveal()))
	return "sha256:" + hex.EncodeToString(sum[:2])
}

// String implements fmt.Stringer with the fingerprint.
func (s Secret) String() string { return s.Fingerprint() }

// GoString implements fmt.GoStringer so that %#v does not print the value.
func (s Secret) GoString() string { return "secret.Secret(" + s.Fingerprint() + ")" }

// Format implements fmt.Formatter: every verb, %x and %q included, prints
// the fingerprint.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.Fingerprint())
}

// MarshalText implements encoding.TextMarshaler (and so JSON) with the
// fingerprint.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.Fingerprint()), nil }

// MarshalLogObject implements zapcore.ObjectMarshaler for zap.Object.
func (s Secret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("fingerprint", s.Fingerprint())
	return nil
}

// MaxFileSize bounds what Ref.Load reads from a secret file: credentials are
// small, and a misconfigured path (a log, a device) must not be read whole.
const MaxFileSize = 64 << 10

// ErrEmpty is returned by Ref.Load when the configured value or file is empty.
var ErrEmpty = errors.New("is empty")

// Ref names where a secret comes from: an inline value or a file. A file is
// read again at every Load, so that a rotated Kubernetes Secret (mounted as
// a symlink swapped atomically by the kubelet) takes effect at the next
// exchange without a restart.
type Ref struct {
	// Value is the inline secret (from a variable such as CREDPROXY_TOKEN).
	Value Secret
	// File is the path of a file holding the secret (CREDPROXY_TOKEN_FILE).
	// When set it wins over Value.
	File string
	// Var names the variable the secret was configured by, for error messages.
	Var string
}

// IsSet reports whether the reference names any source.
func (r Ref) IsSet() bool { return r.File != "" || !r.Value.Empty() }

// Load returns the secret, reading the file when one is configured. Leading
// and trailing white space (the newline editors and `kubectl create secret
// --from-file` leave) is removed. Errors name the variable and the file,
// never the content.
func (r Ref) Load() (Secret, error) {
	if r.File == "" {
		if r.Value.Empty() {
			return Secret{}, fmt.Errorf("%s %w", r.Var, ErrEmpty)
		}
		return r.Value, nil
	}
	v, err := readFile(r.File)
	if err != nil {
		return Secret{}, fmt.Errorf("%s: %w", r.Var, err)
	}
	return v, nil
}

func readFile(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, fmt.Errorf("read secret file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Secret{}, fmt.Errorf("read secret file %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return Secret{}, fmt.Errorf("secret file %s is larger than %d bytes", path, MaxFileSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return Secret{}, fmt.Errorf("secret file %s %w", path, ErrEmpty)
	}
	return New(v), nil
}
