// Package secret carries credentials through credproxy in a type that cannot
// be logged, printed or marshalled by mistake.
//
// A Secret formats as a short fingerprint ("sha256:1a2b") everywhere: fmt
// verbs, zap fields, JSON and text marshalling. The only way to the value is
// Reveal, so every place that puts a credential on the wire is greppable.
//
// What a Secret cannot protect is text from outside that quotes one: an
// identity service's error message echoing the client secret, net/http's
// error quoting an upstream's malformed answer with the token in it. A
// Redactor (redact.go) takes every Secret of a Credentials out of such
// text, in every encoding it knows; RedactError does so for an error.
package secret

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unicode"

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
// never the content; the file only when its name looks like a path
// (LooksLikePath): a value that looks like a secret, put into the *_FILE
// variable by mistake, is named by the variable, not shown.
func (r Ref) Load() (Secret, error) {
	if r.File == "" {
		if r.Value.Empty() {
			return Secret{}, fmt.Errorf("%s %w", r.Var, ErrEmpty)
		}
		return r.Value, nil
	}
	v, err := readFile(r.File, r.Var)
	if err != nil && LooksLikePath(r.File) {
		return Secret{}, fmt.Errorf("%s: %w", r.Var, err)
	}
	return v, err
}

// LooksLikePath reports whether v, the value of a *_FILE variable, may be
// shown in an error: whether it looks like a path rather than a secret
// put there by mistake. It does when it contains a '/', has no white
// space or control character, and none of its runs of letters and digits
// of 12 or more characters holds upper case, lower case and digits
// together: the shape of a random token (a long name in one case or
// without digits, a hex digest or a CamelCase directory, is a name).
// Anything else is named by its variable, not shown.
func LooksLikePath(v string) bool {
	if !strings.Contains(v, "/") || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return false
	}
	run, upper, lower, digit := 0, false, false, false
	for _, r := range v + "/" {
		switch {
		case unicode.IsUpper(r):
			run, upper = run+1, true
		case unicode.IsLower(r):
			run, lower = run+1, true
		case unicode.IsDigit(r):
			run, digit = run+1, true
		default:
			if run >= 12 && upper && lower && digit {
				return false
			}
			run, upper, lower, digit = 0, false, false, false
		}
	}
	return true
}

// hiddenPathError is a failure to read the file a *_FILE variable names
// when its value is not to be shown (LooksLikePath). The *fs.PathError it
// wraps, for errors.Is and errors.As, has the value replaced too.
type hiddenPathError struct {
	msg string
	err error
}

func (e *hiddenPathError) Error() string { return e.msg }
func (e *hiddenPathError) Unwrap() error { return e.err }

// readFile reads the secret file at path, named by variable. Its errors
// show path only when it looks like one.
func readFile(path, variable string) (Secret, error) {
	shown := path
	if !LooksLikePath(path) {
		shown = "(the value of " + variable + ", not shown)"
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if shown != path && errors.As(err, &pe) {
			return Secret{}, &hiddenPathError{
				msg: fmt.Sprintf("%s does not name a readable file; its value looks like a secret rather than a path (not shown): %v", variable, pe.Err),
				err: &fs.PathError{Op: pe.Op, Path: shown, Err: pe.Err},
			}
		}
		return Secret{}, fmt.Errorf("read secret file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok && shown != path {
			err = &fs.PathError{Op: pe.Op, Path: shown, Err: pe.Err}
		}
		return Secret{}, fmt.Errorf("read secret file %s: %w", shown, err)
	}
	if len(b) > MaxFileSize {
		return Secret{}, fmt.Errorf("secret file %s is larger than %d bytes", shown, MaxFileSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return Secret{}, fmt.Errorf("secret file %s %w", shown, ErrEmpty)
	}
	return New(v), nil
}
