package tokensink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/atomicfile"
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
	// OnWritten, when set, is called after every successful write with
	// the token written (for the audit log). It must not block.
	OnWritten func(exchange.Token)
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
		err := atomicfile.WriteFile(s.opts.Path, []byte(tok.Value.Reveal()), s.opts.Mode)
		if s.opts.OnWrite != nil {
			s.opts.OnWrite(err)
		}
		if err == nil {
			if s.opts.OnWritten != nil {
				s.opts.OnWritten(*tok)
			}
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

// removeStaleTemps removes the temporary files of atomicfile.WriteFile for
// the sink's path ("."+base+".tmp-*") older than staleTemp at now: each holds a token.
// Younger ones may be another process's write in progress.
func (s *Sink) removeStaleTemps(now time.Time) {
	matches, err := filepath.Glob(atomicfile.TempGlob(s.opts.Path))
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
