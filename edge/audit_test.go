package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/internal/testwait"
)

func TestParseAuditTarget(t *testing.T) {
	tcs := []struct {
		in      string
		want    AuditTarget
		wantErr bool
	}{
		{in: "", want: AuditTarget{Kind: AuditOff}},
		{in: "off", want: AuditTarget{Kind: AuditOff}},
		{in: "stdout", want: AuditTarget{Kind: AuditStdout}},
		{in: "/var/log/credproxy/audit.log", want: AuditTarget{Kind: AuditFile, Path: "/var/log/credproxy/audit.log"}},
		{in: "/var/log//x/../audit.log", want: AuditTarget{Kind: AuditFile, Path: "/var/log/audit.log"}},
		{in: "audit.log", wantErr: true},
		{in: "OFF", wantErr: true},
		{in: "stderr", wantErr: true},
		{in: "/var/log/", wantErr: true},
	}
	for _, tc := range tcs {
		got, err := ParseAuditTarget(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseAuditTarget(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

// syncBuffer is a concurrency-safe stdout stand-in.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// counter counts OnLost calls by reason.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) lost(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[reason]++
}

func (c *counter) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func stdoutAuditor(t *testing.T, w io.Writer, opts AuditOptions) *Auditor {
	t.Helper()
	opts.Target, opts.Stdout = AuditTarget{Kind: AuditStdout}, w
	a, err := NewAuditor(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const auditToken = "tok-SECRET-5e4d3c2b1a"

// TestAuditLine: every field, by its contract name, in one line; the token
// as its fingerprint and the query without its values.
func TestAuditLine(t *testing.T) {
	var out syncBuffer
	a := stdoutAuditor(t, &out, AuditOptions{})
	a.Start()
	a.Record(Event{
		Time: time.Date(2026, 3, 1, 12, 0, 0, 123_456_789, time.FixedZone("x", 3600)), Route: "splunk", Via: ViaReverse,
		Caller: "@", Peer: Peer{Known: true, UID: 1000, GID: 100, PID: 4242}, Key: "ci",
		Method: "POST", Host: "api.example", Path: "/v2/datapoint", Query: "api_key=" + auditToken + "&b&c=2",
		Status: 200, Decision: Allowed, BytesIn: 10, BytesOut: 20, Duration: 1234567 * time.Nanosecond,
		Token: secret.New(auditToken),
	})
	a.Record(Event{Time: time.Unix(0, 0), Route: "r", Via: ViaSink, Decision: Allowed})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-03-01T11:00:00.123Z","route":"splunk","via":"reverse","caller":"@","uid":1000,"gid":100,"pid":4242,"key":"ci",` +
		`"method":"POST","host":"api.example","path":"/v2/datapoint?api_key=&b&c=","status":200,"decision":"allowed",` +
		`"bytes_in":10,"bytes_out":20,"duration_ms":1.234,"token":"` + secret.New(auditToken).Fingerprint() + `"}` + "\n" +
		`{"time":"1970-01-01T00:00:00.000Z","route":"r","via":"sink","status":0,"decision":"allowed","bytes_in":0,"bytes_out":0,"duration_ms":0}` + "\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	logtest.AssertNoSecrets(t, "the audit log", out.String(), auditToken)
}

// TestAuditLineCannotBeForged: whatever a caller puts in a path, host or
// method, an event is one line that decodes to the values given.
func TestAuditLineCannotBeForged(t *testing.T) {
	forged := "\n{\"decision\":\"allowed\"}"
	evs := []Event{
		{Path: "/x" + forged, Decision: DeniedByPolicy},
		{Host: "h\r\n" + forged + "\u2028\u2029", Decision: DeniedByPolicy},
		{Method: "GET\x00\x1b[2J\x7f", Path: "/\xff\xfe" + forged, Decision: DeniedByPolicy},
		{Path: "/a", Query: "x\n=1&\"y\u2028=2", Decision: DeniedByPolicy},
	}
	for _, ev := range evs {
		var out syncBuffer
		a := stdoutAuditor(t, &out, AuditOptions{})
		a.Record(ev)
		a.Close()
		line := out.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || strings.ContainsAny(line, "\r\u2028\u2029") {
			t.Errorf("%+v wrote %q, not one line", ev, line)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got["decision"] != "denied_by_policy" {
			t.Errorf("%q decodes with decision %v", line, got["decision"])
		}
		if ev.Host != "" && got["host"] != ev.Host || ev.Query == "" && ev.Path != "" && !strings.HasPrefix(ev.Path, "/\xff") && got["path"] != ev.Path {
			t.Errorf("%q does not decode to the values given", line)
		}
	}
}

func TestStripQueryValues(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"a=1&b=2":          "a=&b=",
		"a=1&b&c=x=y":      "a=&b&c=",
		"a=&&b=2":          "a=&&b=",
		"token=abc%3D&z=1": "token=&z=",
	} {
		if got := StripQueryValues(in); got != want {
			t.Errorf("StripQueryValues(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAuditFile: created 0600, appended to, a group-readable file set to
// 0600 with a report, and reopened at its path after a rename.
func TestAuditFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var problems []string
	a, err := NewAuditor(AuditOptions{Target: AuditTarget{Kind: AuditFile, Path: path},
		OnProblem: func(err error) { problems = append(problems, err.Error()) }})
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 || len(problems) != 1 || !strings.Contains(problems[0], "had mode 0640") {
		t.Errorf("mode %v, problems %q; want 0600 and one report", fi.Mode(), problems)
	}
	a.Start()
	a.Record(Event{Route: "one", Decision: Allowed})
	testwait.Eventually(t, 5*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), `"one"`), fmt.Sprintf("the audit file holds %q, want the event of route one", b)
	})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	a.Reopen()
	a.Record(Event{Route: "two", Decision: Allowed})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(old), "earlier\n{") || !strings.Contains(string(old), `"one"`) || strings.Contains(string(old), `"two"`) {
		t.Errorf("the rotated file holds %q", old)
	}
	if strings.Count(string(cur), "\n") != 1 || !strings.Contains(string(cur), `"two"`) {
		t.Errorf("the reopened file holds %q", cur)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("the reopened file has mode %v", fi.Mode())
	}
	if _, err := NewAuditor(AuditOptions{Target: AuditTarget{Kind: AuditFile, Path: filepath.Join(dir, "no", "such")}}); err == nil {
		t.Error("NewAuditor opened a file in a missing directory")
	}
}

// TestAuditQueueFull: Record never waits; what does not fit is counted,
// what is queued is written by Close, and Record after Close is counted.
func TestAuditQueueFull(t *testing.T) {
	var out syncBuffer
	var lost counter
	a := stdoutAuditor(t, &out, AuditOptions{QueueSize: 2, OnLost: lost.lost})
	for range 5 {
		a.Record(Event{Decision: Allowed})
	}
	a.Close()
	a.Close()
	a.Record(Event{Decision: Allowed})
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("%d lines written, want 2", n)
	}
	if diff := cmp.Diff(map[string]int{LostQueueFull: 3, LostClosed: 1}, lost.get()); diff != "" {
		t.Errorf("lost (-want +got):\n%s", diff)
	}
}

// blockingWriter blocks every write until released, failing after.
type blockingWriter struct {
	release chan struct{}
	writes  atomic.Int32
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	<-w.release
	return 0, errors.New("disk full")
}

// TestAuditStuckWriter: a writer that hangs does not block Record; once
// it fails, the events are counted lost and the failure reported once.
func TestAuditStuckWriter(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	var lost counter
	var problems atomic.Int32
	a := stdoutAuditor(t, w, AuditOptions{QueueSize: 4, OnLost: lost.lost, OnProblem: func(error) { problems.Add(1) }})
	a.Start()
	a.Record(Event{})
	testwait.Eventually(t, 5*time.Second, func() (bool, string) {
		n := w.writes.Load()
		return n == 1, fmt.Sprintf("%d writes, want 1", n)
	})
	done := make(chan struct{})
	go func() {
		for range 100 {
			a.Record(Event{})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked behind a stuck writer")
	}
	close(w.release)
	a.Close()
	if diff := cmp.Diff(map[string]int{LostQueueFull: 96, LostWriteError: 5}, lost.get()); diff != "" {
		t.Errorf("lost (-want +got):\n%s", diff)
	}
	if problems.Load() != 1 {
		t.Errorf("the same failure was reported %d times", problems.Load())
	}
}

// TestAuditConcurrent: many recorders, a reopen and a close at once,
// under -race; nothing is lost with room in the queue.
func TestAuditConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var lost counter
	a, err := NewAuditor(AuditOptions{Target: AuditTarget{Kind: AuditFile, Path: path}, QueueSize: 1000, OnLost: lost.lost})
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				a.Record(Event{Route: "r", Decision: Allowed})
			}
		})
	}
	a.Reopen()
	wg.Wait()
	a.Close()
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n") + lost.get()[LostQueueFull]; n != 800 {
		t.Errorf("%d lines written or counted lost, want 800", n)
	}
}

func TestAuditOff(t *testing.T) {
	a, err := NewAuditor(AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nilAuditor *Auditor
	for _, a := range []*Auditor{a, nilAuditor} {
		a.Start()
		a.Record(Event{})
		a.Reopen()
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkAuditRecord(b *testing.B) {
	var lost atomic.Int64
	a, err := NewAuditor(AuditOptions{Target: AuditTarget{Kind: AuditStdout}, Stdout: io.Discard, OnLost: func(string) { lost.Add(1) }})
	if err != nil {
		b.Fatal(err)
	}
	a.Start()
	ev := Event{Time: time.Now(), Route: "splunk", Via: ViaReverse, Caller: "127.0.0.1:53122", Method: "POST", Host: "api.example",
		Path: "/v2/datapoint", Query: "a=1&b=2", Status: 200, Decision: Allowed, Duration: time.Millisecond, Token: secret.New(auditToken)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Record(ev)
		}
	})
	b.StopTimer()
	a.Close()
	b.ReportMetric(float64(lost.Load())/float64(b.N), "lost/op")
}

func BenchmarkAuditEncode(b *testing.B) {
	ev := Event{Time: time.Now(), Route: "splunk", Via: ViaReverse, Caller: "127.0.0.1:53122", Method: "POST", Host: "api.example",
		Path: "/v2/datapoint", Query: "a=1&b=2", Status: 200, Decision: Allowed, Duration: time.Millisecond, Token: secret.New(auditToken)}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendEvent(buf[:0], &ev, time.Now)
	}
}
