package tokensink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/internal/testwait"
)

// running is a Sink whose Run goroutine the test stops.
type running struct {
	*Sink
	stop func()
}

// run starts a sink on path; stop cancels it and waits for Run to return.
// It is also called when the test ends.
func run(t *testing.T, opts Options) *running {
	t.Helper()
	s := New(opts)
	s.retryBase = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &running{s, stop}
}

func token(v string) exchange.Token {
	return exchange.Token{Value: secret.New(v), Expiry: time.Now().Add(time.Hour)}
}

// holds is a testwait.Eventually condition: the file at path holds want.
func holds(path, want string) func() (bool, string) {
	return func() (bool, string) {
		got := content(path)
		return got == want, fmt.Sprintf("%s holds %.40q (%d bytes), want %.40q (%d bytes)", path, got, len(got), want, len(want))
	}
}

// failedAtLeast is a testwait.Eventually condition: failures() reports at
// least n.
func failedAtLeast(failures func() int, n int) func() (bool, string) {
	return func() (bool, string) {
		got := failures()
		return got >= n, fmt.Sprintf("%d failed attempts, want %d", got, n)
	}
}

func content(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestReaderSeesOnlyWholeTokens: while tokens of very different lengths
// replace each other every millisecond, a reader polling the file sees
// only tokens that were offered, whole: never an empty file, a torn one,
// or (once it exists) no file.
func TestReaderSeesOnlyWholeTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	s := run(t, Options{Path: path, Route: "r"})
	var offered sync.Map
	var last atomic.Value
	done := make(chan struct{})
	var reads, distinct atomic.Int64
	var readerErr atomic.Value
	go func() {
		seen, existed := map[string]bool{}, false
		for {
			select {
			case <-done:
				return
			default:
			}
			b, err := os.ReadFile(path)
			switch {
			case errors.Is(err, fs.ErrNotExist) && !existed:
			case err != nil:
				readerErr.Store(fmt.Sprintf("read %d: %v", reads.Load(), err))
				return
			case len(b) == 0:
				readerErr.Store(fmt.Sprintf("read %d: an empty file", reads.Load()))
				return
			default:
				if _, ok := offered.Load(string(b)); !ok {
					readerErr.Store(fmt.Sprintf("read %d: %d bytes that are no offered token", reads.Load(), len(b)))
					return
				}
				existed = true
				if !seen[string(b)] {
					seen[string(b)] = true
					distinct.Add(1)
				}
			}
			reads.Add(1)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for i := range 1500 {
		// From 10 bytes to 64 KiB, so a torn or partial read shows.
		v := fmt.Sprintf("tok-%06d-", i) + strings.Repeat(string(rune('a'+i%26)), (i*7919)%(64<<10))
		offered.Store(v, true)
		last.Store(v)
		s.Offer(token(v))
		time.Sleep(time.Millisecond)
	}
	testwait.Eventually(t, 10*time.Second, holds(path, last.Load().(string))) // the last token
	close(done)
	if e := readerErr.Load(); e != nil {
		t.Fatal(e)
	}
	if reads.Load() < 500 || distinct.Load() < 50 {
		t.Errorf("the reader read %d times and saw %d tokens: too few to tell", reads.Load(), distinct.Load())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".token.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestModeAndRemoval: the file has the configured mode whatever the
// umask, holds the bare token without a newline, and is removed when the
// sink stops.
func TestModeAndRemoval(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, mode := range []fs.FileMode{0, 0o640, 0o400} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			log, logs := logtest.New(t)
			s := run(t, Options{Path: path, Mode: mode, Route: "r", Logger: log})
			want := mode
			if want == 0 {
				want = DefaultMode
			}
			for _, v := range []string{"mode-SECRET-1", "mode-SECRET-2"} {
				s.Offer(token(v))
				testwait.Eventually(t, 10*time.Second, holds(path, v))
				if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
					t.Errorf("mode %v (%v), want %v", fi.Mode().Perm(), err, want)
				}
			}
			s.stop()
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after stop: %v, want the file removed", err)
			}
			if !strings.Contains(logs.String(), "token sink removed") {
				t.Error("the removal is not logged")
			}
			logtest.AssertNoSecrets(t, "logs", logs.String(), "mode-SECRET-1", "mode-SECRET-2")
		})
	}
}

// TestWriteFailureLoggedCountedRetried: a write that fails (the path is
// a directory; the directory is gone) is logged without the token and
// counted, and retried until it succeeds; a directory in the file's place
// is not removed at shutdown.
func TestWriteFailureLoggedCountedRetried(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sink")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token")
	log, logs := logtest.New(t)
	var mu sync.Mutex
	var results []error
	s := run(t, Options{Path: path, Route: "r", Logger: log, OnWrite: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, err)
	}})
	failures := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, err := range results {
			if err != nil {
				n++
			}
		}
		return n
	}

	// The path is a directory.
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	s.Offer(token("fail-SECRET-1"))
	testwait.Eventually(t, 10*time.Second, failedAtLeast(failures, 2))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, holds(path, "fail-SECRET-1")) // written by the retry

	// The directory is gone.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	before := failures()
	s.Offer(token("fail-SECRET-2"))
	testwait.Eventually(t, 10*time.Second, failedAtLeast(failures, before+1))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, holds(path, "fail-SECRET-2")) // written by the retry

	text := logs.String()
	if !strings.Contains(text, `"level":"error"`) || !strings.Contains(text, "token sink: write failed") || !strings.Contains(text, path) {
		t.Errorf("the failure is not logged as an error naming the file:\n%s", text)
	}
	logtest.AssertNoSecrets(t, "logs", text, "fail-SECRET-1", "fail-SECRET-2")

	// A directory put in the file's place stays at shutdown.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	s.stop()
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("a directory at the sink's path was removed: %v", err)
	}
}

func TestCheckPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "token"), ""},
		{file, ""}, // an old sink file is replaced
		{filepath.Join(dir, "missing", "token"), "directory " + filepath.Join(dir, "missing") + " does not exist"},
		{filepath.Join(file, "token"), file + " is not a directory"},
		{dir, dir + " is a directory"},
	} {
		got := ""
		if err := CheckPath(tc.path); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckPath(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestStaleTempFilesRemoved: temporary files a killed credproxy left
// beside the sink's file (each holds a token) are removed when the next
// run starts; a young one, perhaps another process's write in progress,
// other files' temporaries and a directory of that name are left alone,
// also when the file's name holds glob characters.
func TestStaleTempFilesRemoved(t *testing.T) {
	for _, base := range []string{"token", "to[k]en*?"} {
		t.Run(base, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, base)
			old := time.Now().Add(-2 * staleTemp)
			files := map[string]bool{ // name: removed
				"." + base + ".tmp-123":  true,
				"." + base + ".tmp-4567": true,
				"." + base + ".tmp-new":  false,
				".other.tmp-123":         false,
				base + ".tmp-123":        false,
			}
			for name := range files {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte("left-SECRET-token"), 0o600); err != nil {
					t.Fatal(err)
				}
				if name != "."+base+".tmp-new" {
					if err := os.Chtimes(p, old, old); err != nil {
						t.Fatal(err)
					}
				}
			}
			subdir := filepath.Join(dir, "."+base+".tmp-dir")
			if err := os.Mkdir(subdir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(subdir, old, old); err != nil {
				t.Fatal(err)
			}
			log, logs := logtest.New(t)
			r := run(t, Options{Path: path, Logger: log})
			r.Offer(token("fresh-SECRET-1"))
			testwait.Eventually(t, 10*time.Second, holds(path, "fresh-SECRET-1"))
			for name, removed := range files {
				_, err := os.Stat(filepath.Join(dir, name))
				if gone := errors.Is(err, fs.ErrNotExist); gone != removed {
					t.Errorf("%s: removed %v, want %v", name, gone, removed)
				}
			}
			if _, err := os.Stat(subdir); err != nil {
				t.Errorf("the directory %s was removed: %v", subdir, err)
			}
			if n := strings.Count(logs.String(), "removed a temporary file left by an earlier run"); n != 2 {
				t.Errorf("%d removals logged, want 2:\n%s", n, logs)
			}
			logtest.AssertNoSecrets(t, "logs", logs.String(), "left-SECRET-token", "fresh-SECRET-1")
		})
	}
}
