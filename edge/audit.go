package edge

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/credproxy/credproxy/internal/secret"
)

// AuditKind is where an audit log goes.
type AuditKind int

// The audit log's destinations.
const (
	// AuditOff records nothing (the default).
	AuditOff AuditKind = iota
	// AuditStdout writes lines to standard output, beside the logs.
	AuditStdout
	// AuditFile appends lines to a file.
	AuditFile
)

// AuditTarget is CREDPROXY_AUDIT_LOG parsed.
type AuditTarget struct {
	Kind AuditKind
	// Path is the file, for AuditFile.
	Path string
}

// String is the target as CREDPROXY_AUDIT_LOG writes it.
func (t AuditTarget) String() string {
	switch t.Kind {
	case AuditStdout:
		return "stdout"
	case AuditFile:
		return t.Path
	}
	return "off"
}

// ParseAuditTarget parses CREDPROXY_AUDIT_LOG: "off" or empty, "stdout",
// or an absolute file path (a relative one would depend on the working
// directory of whatever started credproxy). Its error is meant to be
// prefixed with the variable's name.
func ParseAuditTarget(s string) (AuditTarget, error) {
	switch {
	case s == "" || s == "off":
		return AuditTarget{Kind: AuditOff}, nil
	case s == "stdout":
		return AuditTarget{Kind: AuditStdout}, nil
	case filepath.IsAbs(s) && !strings.HasSuffix(s, "/"):
		return AuditTarget{Kind: AuditFile, Path: filepath.Clean(s)}, nil
	}
	return AuditTarget{}, fmt.Errorf("%q is not off, stdout or an absolute file path", s)
}

// Via is the way a credential was spent or handed out.
type Via string

// The ways in, as the audit log names them.
const (
	ViaReverse  Via = "reverse"
	ViaForward  Via = "forward"
	ViaExec     Via = "exec"
	ViaTokenAPI Via = "token_api"
	ViaOAuth2   Via = "oauth2"
	ViaSink     Via = "sink"
)

// Decision is what the edge decided about a call; every value but
// Allowed is also the error code of the refusal's body.
type Decision string

// The decisions.
const (
	Allowed               Decision = "allowed"
	DeniedByPolicy        Decision = "denied_by_policy"
	ClientKeyRequired     Decision = "client_key_required"
	CallerNotAllowed      Decision = "caller_not_allowed"
	BrowserRequestRefused Decision = "browser_request_refused"
	CredentialUnavailable Decision = "credential_unavailable"
)

// Peer is a unix-socket caller's identity from the kernel (SO_PEERCRED).
// The zero Peer is unknown (a TCP caller), so that a forgotten field never
// reads as uid 0.
type Peer struct {
	// Known is true when UID and GID (and PID, when not 0) were read.
	Known    bool
	UID, GID uint32
	// PID is 0 when the kernel did not say.
	PID int32
}

// Event is one decision on a credential: a proxied request, or a token
// handed out by the token API, /oauth2/token or a sink write. It holds
// no secret: Token is written as its fingerprint, and Query's values are
// removed when the line is written.
type Event struct {
	// Time is when the decision was made (zero: when the line is written).
	Time  time.Time
	Route string
	Via   Via
	// Caller is the remote address ("" for none, as for a sink write).
	Caller string
	// Peer is the caller's uid, gid and pid on a unix socket.
	Peer Peer
	// Key is the client key's name ("" when no key was presented).
	Key    string
	Method string
	Host   string
	// Path is the escaped path (r.URL.EscapedPath()).
	Path string
	// Query is the raw query (r.URL.RawQuery); only its names are written,
	// "?a=&b=", in order.
	Query    string
	Status   int
	Decision Decision
	BytesIn  int64
	BytesOut int64
	Duration time.Duration
	// Token is the credential spent or handed out; only its fingerprint is
	// written.
	Token secret.Secret
}

// Reasons an event is lost, for AuditOptions.OnLost.
const (
	LostQueueFull  = "queue_full"
	LostWriteError = "write_error"
	LostClosed     = "closed"
)

// AuditOptions configure NewAuditor.
type AuditOptions struct {
	Target AuditTarget
	// Stdout is where AuditStdout writes (nil: os.Stdout).
	Stdout io.Writer
	// QueueSize bounds the events waiting to be written (0: 4096). When it
	// is full, Record drops the event rather than wait.
	QueueSize int
	// OnProblem, when set, is called with what the caller should log: a
	// failed write or reopen (once per distinct error until a write
	// succeeds), or a file whose group or world permissions were removed.
	// It is called from the writer goroutine, Reopen's or NewAuditor's,
	// one call at a time. Its errors hold no secret.
	OnProblem func(err error)
	// OnLost, when set, is called once per event lost, with LostQueueFull,
	// LostWriteError or LostClosed (for a metric counter). It is called
	// from Record's goroutine or the writer's, concurrently: it must be
	// safe for concurrent use and quick.
	OnLost func(reason string)
	// Now is the clock for events without a Time (nil: time.Now).
	Now func() time.Time
}

// Auditor writes the audit log: one JSON line per Event, so that a line
// can never be forged by a value (every control character, U+2028 and
// U+2029 are escaped, invalid UTF-8 is replaced, long values cut).
//
// Record never blocks a request: it puts the event in a bounded queue,
// which one writer goroutine (Start) encodes and writes, a batch of lines
// per write. Only that goroutine touches the file, so Reopen asks it to
// reopen rather than racing it. A full queue or a failed write loses
// events, each counted through OnLost; a failure is reported through
// OnProblem.
//
// Lifecycle: NewAuditor opens the file and starts nothing; Start starts
// the writer; Close stops taking events, writes those queued and closes
// the file. Record, Reopen and Close are safe for concurrent use and
// after Close; Start and Close may each be called more than once. A nil
// *Auditor, or one whose target is AuditOff, records nothing.
type Auditor struct {
	opts   AuditOptions
	q      chan Event
	reopen chan struct{}
	stop   chan struct{}
	done   chan struct{}
	start  sync.Once
	close  sync.Once

	// mu guards closed: Record holds it shared while it enqueues, so that
	// once Close has set closed under the exclusive lock no event can be
	// queued that the writer's final drain would miss.
	mu     sync.RWMutex
	closed bool

	// Owned by the writer goroutine (or by Close when Start was never
	// called, or by NewAuditor before either).
	w       io.Writer
	file    *os.File
	lastErr string
}

// NewAuditor returns an Auditor for opts.Target. For a file it opens (or
// creates, mode 0600) the file for appending; a file that exists with
// group or world permissions is set to 0600 (and OnProblem told), as the
// log names callers and paths. Errors are configuration errors.
func NewAuditor(opts AuditOptions) (*Auditor, error) {
	a := &Auditor{opts: opts}
	if a.opts.Now == nil {
		a.opts.Now = time.Now
	}
	switch opts.Target.Kind {
	case AuditOff:
		return a, nil
	case AuditStdout:
		a.w = opts.Stdout
		if a.w == nil {
			a.w = os.Stdout
		}
	case AuditFile:
		f, err := a.openFile()
		if err != nil {
			return nil, err
		}
		a.w, a.file = f, f
	default:
		return nil, fmt.Errorf("audit log: unknown target kind %d", opts.Target.Kind)
	}
	size := opts.QueueSize
	if size <= 0 {
		size = 4096
	}
	a.q = make(chan Event, size)
	a.reopen = make(chan struct{}, 1)
	a.stop = make(chan struct{})
	a.done = make(chan struct{})
	return a, nil
}

// openFile opens the target file for appending, mode 0600.
func (a *Auditor) openFile() (*os.File, error) {
	path := a.opts.Target.Path
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit log %s has mode %04o and cannot be set to 0600: %w", path, fi.Mode().Perm(), err)
		}
		a.problem(fmt.Errorf("audit log %s had mode %04o; set to 0600", path, fi.Mode().Perm()))
	}
	return f, nil
}

// Record queues ev for the writer and returns at once. When the queue is
// full, or the Auditor is closed, ev is lost and counted.
func (a *Auditor) Record(ev Event) {
	if a == nil || a.q == nil {
		return
	}
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		a.lost(LostClosed, 1)
		return
	}
	select {
	case a.q <- ev:
	default:
		a.lost(LostQueueFull, 1)
	}
	a.mu.RUnlock()
}

// Start starts the writer goroutine; later calls do nothing.
func (a *Auditor) Start() {
	if a == nil || a.q == nil {
		return
	}
	a.start.Do(func() { go a.run() })
}

// Reopen asks the writer to reopen the file at its path (after logrotate
// moved it, on SIGHUP) before it writes the next batch. It returns at
// once; a failure is reported through OnProblem and the old file is kept.
// For stdout it does nothing.
func (a *Auditor) Reopen() {
	if a == nil || a.file == nil {
		return
	}
	select {
	case a.reopen <- struct{}{}:
	default: // a reopen is already pending
	}
}

// Close stops taking events, writes every event already queued, and
// closes the file. It waits for the writer, so call it after the
// listeners have drained. Later calls do nothing.
func (a *Auditor) Close() error {
	if a == nil || a.q == nil {
		return nil
	}
	var err error
	a.close.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		started := true
		a.start.Do(func() { started = false })
		if started {
			close(a.stop)
			<-a.done
		} else {
			a.drain(make([]byte, 0, batchBytes))
		}
		if a.file != nil {
			err = a.file.Close()
		}
	})
	return err
}

// batchBytes is how many bytes of lines the writer gathers per write to
// a file. Standard output gets a write per line, so that its lines do not
// interleave with the logs' mid-line.
const batchBytes = 64 << 10

// run is the writer goroutine.
func (a *Auditor) run() {
	defer close(a.done)
	buf := make([]byte, 0, batchBytes)
	for {
		select {
		case <-a.reopen:
			a.doReopen()
		case ev := <-a.q:
			// A Reopen that returned before ev was recorded comes first,
			// whichever channel select picked.
			select {
			case <-a.reopen:
				a.doReopen()
			default:
			}
			buf = a.writeBatch(buf, ev)
		case <-a.stop:
			a.drain(buf)
			return
		}
	}
}

// writeBatch writes ev and whatever else is queued, up to a batch.
func (a *Auditor) writeBatch(buf []byte, ev Event) []byte {
	buf = appendEvent(buf[:0], &ev, a.opts.Now)
	n := 1
	for a.file != nil && len(buf) < batchBytes {
		select {
		case ev := <-a.q:
			buf = appendEvent(buf, &ev, a.opts.Now)
			n++
			continue
		default:
		}
		break
	}
	a.write(buf, n)
	return buf
}

// drain writes every queued event; nothing is queued after Close.
func (a *Auditor) drain(buf []byte) {
	for {
		select {
		case ev := <-a.q:
			buf = a.writeBatch(buf, ev)
		default:
			return
		}
	}
}

// write writes n events' lines, counting them lost when it fails.
func (a *Auditor) write(b []byte, n int) {
	if _, err := a.w.Write(b); err != nil {
		a.lost(LostWriteError, n)
		if msg := err.Error(); msg != a.lastErr {
			a.lastErr = msg
			a.problem(fmt.Errorf("audit log: write: %w (events are lost until a write succeeds)", err))
		}
		return
	}
	a.lastErr = ""
}

// doReopen reopens the file; on failure the old one is kept.
func (a *Auditor) doReopen() {
	f, err := a.openFile()
	if err != nil {
		a.problem(fmt.Errorf("reopen %w; still writing to the file opened before", err))
		return
	}
	if err := a.file.Close(); err != nil {
		a.problem(fmt.Errorf("audit log: close the file before reopening: %w", err))
	}
	a.w, a.file = f, f
}

func (a *Auditor) problem(err error) {
	if a.opts.OnProblem != nil {
		a.opts.OnProblem(err)
	}
}

func (a *Auditor) lost(reason string, n int) {
	if a.opts.OnLost != nil {
		for range n {
			a.opts.OnLost(reason)
		}
	}
}

// maxFieldLen bounds each string written, so that a line stays a line a
// log shipper takes whole (a request line may be a megabyte).
const maxFieldLen = 2048

// appendEvent appends ev's JSON line. Empty strings and an unknown Peer
// are left out; numbers are always written.
func appendEvent(b []byte, ev *Event, now func() time.Time) []byte {
	t := ev.Time
	if t.IsZero() {
		t = now()
	}
	b = append(b, `{"time":"`...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, '"')
	b = appendField(b, "route", ev.Route)
	b = appendField(b, "via", string(ev.Via))
	b = appendField(b, "caller", ev.Caller)
	if ev.Peer.Known {
		b = strconv.AppendUint(append(b, `,"uid":`...), uint64(ev.Peer.UID), 10)
		b = strconv.AppendUint(append(b, `,"gid":`...), uint64(ev.Peer.GID), 10)
		if ev.Peer.PID > 0 {
			b = strconv.AppendInt(append(b, `,"pid":`...), int64(ev.Peer.PID), 10)
		}
	}
	b = appendField(b, "key", ev.Key)
	b = appendField(b, "method", ev.Method)
	b = appendField(b, "host", ev.Host)
	if ev.Path != "" || ev.Query != "" {
		b = append(b, `,"path":`...)
		b = appendPath(b, ev.Path, ev.Query)
	}
	b = strconv.AppendInt(append(b, `,"status":`...), int64(ev.Status), 10)
	b = appendField(b, "decision", string(ev.Decision))
	b = strconv.AppendInt(append(b, `,"bytes_in":`...), ev.BytesIn, 10)
	b = strconv.AppendInt(append(b, `,"bytes_out":`...), ev.BytesOut, 10)
	b = strconv.AppendFloat(append(b, `,"duration_ms":`...), float64(ev.Duration.Microseconds())/1000, 'f', -1, 64)
	if !ev.Token.Empty() {
		b = appendField(b, "token", ev.Token.Fingerprint())
	}
	return append(b, "}\n"...)
}

// appendField appends `,"name":"value"` when value is not empty.
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendPath appends path and, when there is a query, "?" and its names
// with their values removed, as one JSON string.
func appendPath(b []byte, path, query string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, path, maxFieldLen)
	if query != "" {
		b = append(b, '?')
		b = appendQueryNames(b, query)
	}
	return append(b, '"')
}

// appendQueryNames appends query with every value removed, escaped for
// JSON: "a=1&b&c=2" gives "a=&b&c=".
func appendQueryNames(b []byte, query string) []byte {
	budget := maxFieldLen
	for i := 0; query != ""; i++ {
		var piece string
		piece, query, _ = strings.Cut(query, "&")
		if i > 0 {
			b = append(b, '&')
		}
		name, _, hasValue := strings.Cut(piece, "=")
		if len(name) > budget {
			name = name[:budget]
		}
		budget -= len(name)
		b = appendEscaped(b, name, len(name))
		if hasValue {
			b = append(b, '=')
		}
	}
	return b
}

// StripQueryValues returns a raw query with every value removed and the
// names kept in order: "a=1&b&c=2" gives "a=&b&c=". A piece without '='
// is kept as it is, read as a name (as url.ParseQuery does).
func StripQueryValues(rawQuery string) string {
	return string(appendQueryNames(nil, rawQuery))
}

// appendString appends s as a JSON string, cut at maxFieldLen bytes.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s, maxFieldLen)
	return append(b, '"')
}

// appendEscaped appends at most limit bytes of s (then "…"), escaped for
// a JSON string so that nothing in it can end the line or the string:
// '"', '\\', every control character (and DEL), U+2028 and U+2029 are
// escaped; invalid UTF-8 becomes U+FFFD.
func appendEscaped(b []byte, s string, limit int) []byte {
	const hex = "0123456789abcdef"
	cut := len(s) > limit
	if cut {
		s = s[:limit]
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	if cut {
		b = append(b, "…"...)
	}
	return b
}
