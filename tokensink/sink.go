package tokensink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
)

// DefaultMode is the file mode when Options.Mode is zero: the token is
// for the user credproxy runs as.
const DefaultMode fs.FileMode = 0o600

// Retry bounds of a failed write: 1 s doubling to a minute, so that a
// long-lived token (a 30-day session renewed after 20 days) does not
// leave the file stale or missing until its next renewal.
const (
	retryBase = time.Second
	retryMax  = time.Minute
)

// Options configures a Sink.
type Options struct {
	// Path is the file the token is written to. Its directory must exist
	// (see CheckPath).
	Path string
	// Mode is the file's permission bits; zero means DefaultMode. It is
	// set with chmod, so the umask does not narrow it.
	Mode fs.FileMode
	// Route names the route in logs.
	Route string
	// Logger receives a line per failed write, and the removal. Default:
	// no logging.
	Logger *zap.Logger
	// OnWrite, when set, is called after every write attempt with its
	// error, nil on success. It must not block.
	OnWrite func(error)
	// Metrics, when set, counts the writes by Route and result. Nil
	// counts nothing.
	Metrics *Metrics
}

// Sink keeps one route's token in a file. Offer may be called from any
// goroutine; Run must be called exactly once.
type Sink struct {
	opts Options
	log  *zap.Logger
	// latest is the newest token offered. Offer only swaps it, so the
	// cache's loop never waits for the disk; Run writes what it holds
	// when woken, and a token replaced before Run got to it is skipped.
	latest atomic.Pointer[exchange.Token]
	// wake tells Run that latest changed; one pending signal suffices.
	wake chan struct{}
	// retryBase is the first retry delay; tests shorten it.
	retryBase time.Duration
}

// New returns a Sink writing to opts.Path. Nothing is written until Run.
func New(opts Options) *Sink {
	if opts.Mode == 0 {
		opts.Mode = DefaultMode
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	opts.OnWrite = opts.Metrics.observeWrite(opts.Route, opts.OnWrite)
	return &Sink{
		opts:      opts,
		log:       log.With(zap.String("route", opts.Route), zap.String("file", opts.Path)),
		wake:      make(chan struct{}, 1),
		retryBase: retryBase,
	}
}

// Offer hands the sink a new token to write; it never blocks. It is the
// tokencache.Options.OnToken hook.
func (s *Sink) Offer(tok exchange.Token) {
	s.latest.Store(&tok)
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// staleTemp is the age after which a temporary file of the sink's is taken
// for one a killed credproxy left behind: a write takes milliseconds.
const staleTemp = time.Minute

// Run writes every token offered, and retries a failed write, until ctx
// ends; then it removes the file and returns. It first removes temporary
// files that a credproxy killed mid-write left beside the file.
func (s *Sink) Run(ctx context.Context) {
	s.removeStaleTemps(time.Now())
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			s.remove()
			return
		case <-s.wake:
		case <-retry.C:
		}
		tok := s.latest.Load()
		if tok == nil || tok.Value.Empty() {
			continue // a reader must never see an empty file
		}
		err := writeFile(s.opts.Path, []byte(tok.Value.Reveal()), s.opts.Mode)
		if s.opts.OnWrite != nil {
			s.opts.OnWrite(err)
		}
		if err == nil {
			failures = 0
			retry.Stop()
			s.log.Debug("token written to the sink", zap.Stringer("token", tok.Value))
			continue
		}
		failures++
		delay := min(retryMax, s.retryBase<<min(failures-1, 6))
		retry.Reset(delay)
		s.log.Error("token sink: write failed; the file, if any, keeps the previous token", zap.Error(err),
			zap.Int("consecutive_failures", failures), zap.Duration("retry_in", delay))
	}
}

// removeStaleTemps removes the temporary files of writeFile for the sink's
// path ("."+base+".tmp-*") older than staleTemp at now: each holds a token.
// Younger ones may be another process's write in progress.
func (s *Sink) removeStaleTemps(now time.Time) {
	dir, base := filepath.Split(s.opts.Path)
	matches, err := filepath.Glob(filepath.Join(dir, "."+globEscape(base)+".tmp-*"))
	if err != nil {
		return
	}
	for _, m := range matches {
		fi, err := os.Lstat(m)
		if err != nil || !fi.Mode().IsRegular() || now.Sub(fi.ModTime()) < staleTemp {
			continue
		}
		if err := os.Remove(m); err != nil {
			s.log.Warn("token sink: a temporary file left by an earlier run could not be removed", zap.String("temp", m), zap.Error(err))
			continue
		}
		s.log.Info("token sink: removed a temporary file left by an earlier run", zap.String("temp", m))
	}
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// writeFile replaces path with data atomically: a reader opening path
// sees the old content or the new, whole. The temporary file is created
// with mode 0600 (os.CreateTemp) and given mode just before the rename,
// so the token is never readable under path with another mode.
func writeFile(path string, data []byte, mode fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create a temporary file beside it: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync the directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync the directory: %w", err)
	}
	return nil
}

// remove deletes the file at shutdown. Something that is not a file
// (a directory put there meanwhile) is left alone.
func (s *Sink) remove() {
	fi, err := os.Lstat(s.opts.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err == nil && fi.IsDir():
		s.log.Warn("token sink: not removed at shutdown, it is a directory")
		return
	}
	if err := os.Remove(s.opts.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("token sink: could not remove the file at shutdown; it holds a token", zap.Error(err))
		return
	}
	s.log.Info("token sink removed")
}

// CheckPath reports what would keep a sink from ever writing path, as far
// as can be told before the first write: its directory must exist and be
// a directory, and path must not be a directory. The errors name the
// paths, never a token.
func CheckPath(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}
