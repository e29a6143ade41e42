package edge

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/logtest"
)

// Keys distinctive enough for the leak checker.
const (
	keyA = "kA-7f3e9d1c5b2a4e6f"
	keyB = "kB-0c8d2e4f6a1b3c5d"
	keyC = "kC-9e8d7c6b5a4f3e2d"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestParseKeys(t *testing.T) {
	tcs := []struct {
		desc, content string
		names         []string
		wantErr       string
	}{
		{desc: "named and bare", content: "# keys\n\nci:" + keyA + "\n  " + keyB + "  \r\n", names: []string{"ci", "key4"}},
		{desc: "space around the colon", content: "ci : " + keyA + "\n", names: []string{"ci"}},
		{desc: "a key holding a colon, named", content: "ci:" + keyA + ":x\n", names: []string{"ci"}},
		{desc: "empty file", content: "", wantErr: "holds no keys"},
		{desc: "only comments", content: "# a\n\n  # b\n", wantErr: "holds no keys"},
		{desc: "duplicate names", content: "a:" + keyA + "\n\nb:" + keyB + "\na:" + keyC + "\n", wantErr: `line 4: the name "a" is also on line 1`},
		{desc: "bare name collides", content: keyA + "\nkey1:" + keyB + "\n", wantErr: `line 2: the name "key1" is also on line 1`},
		{desc: "duplicate keys", content: "a:" + keyA + "\n#\nb:" + keyA + "\n", wantErr: "line 3: the same key as on line 1"},
		{desc: "short key", content: "a:" + keyA + "\nb:" + keyB[:15] + "\n", wantErr: "line 2: the key is shorter than 16 bytes"},
		{desc: "short bare key", content: keyB[:15] + "\n", wantErr: "line 1: the key is shorter than 16 bytes"},
		{desc: "space inside", content: "a:" + keyA[:9] + " " + keyA[9:] + "\n", wantErr: "line 1: the key holds white space"},
		{desc: "tab inside", content: "\n" + keyA[:9] + "\t" + keyA[9:] + "\n", wantErr: "line 2: the key holds white space"},
		{desc: "non-ASCII", content: "a:" + keyA + "é\n", wantErr: "line 1: the key holds a character other than printable ASCII"},
		{desc: "no key after the name", content: "a:\n", wantErr: "line 1: no key after the name"},
		{desc: "bad name", content: "a b:" + keyA + "\n", wantErr: "line 1: the name before ':' must be"},
		{desc: "key piece as a name", content: keyA[:5] + "%:" + keyA + "\n", wantErr: "line 1: the name before ':' must be"},
		{desc: "long name", content: strings.Repeat("n", 65) + ":" + keyA + "\n", wantErr: "line 1: the name before ':' must be"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys")
			writeFile(t, path, tc.content)
			s, err := ParseKeysFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, path, tc.wantErr)
				}
				logtest.AssertNoSecrets(t, "the error", err.Error(), keyA, keyB, keyC)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.names, s.Names()); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseKeysFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	if _, err := ParseKeysFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ParseKeysFile(dir); err == nil {
		t.Error("a directory was read as a keys file")
	}
	big := filepath.Join(dir, "big")
	writeFile(t, big, strings.Repeat("#\n", maxKeysFileSize))
	if _, err := ParseKeysFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

func TestKeySetLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeFile(t, path, "ci:"+keyA+"\n"+keyB+"\n")
	s, err := ParseKeysFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tcs := []struct{ presented, name string }{
		{keyA, "ci"},
		{keyB, "key2"},
		{keyC, ""},
		{"", ""},
		{keyA[:len(keyA)-1], ""},
		{keyA + "x", ""},
		{strings.ToUpper(keyA), ""},
		{"ci:" + keyA, ""},
	}
	for _, tc := range tcs {
		name, ok := s.Lookup(tc.presented)
		if name != tc.name || ok != (tc.name != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.presented, name, ok, tc.name)
		}
	}
	var nilSet *KeySet
	if _, ok := nilSet.Lookup(keyA); ok || nilSet.Len() != 0 {
		t.Error("a nil KeySet accepted a key")
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type reloadLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *reloadLog) record(n int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := "ok"
	if err != nil {
		msg = err.Error()
	}
	l.errs = append(l.errs, msg)
}

func (l *reloadLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.errs
	l.errs = nil
	return out
}

// TestKeysRotation: a rewritten file takes effect at the first lookup a
// second after the last check, not before; a broken or missing file
// keeps the old keys and is reported once.
func TestKeysRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeFile(t, path, "old:"+keyA+"\n")
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var log reloadLog
	k, err := NewKeys(KeysOptions{File: path, Now: clock.now, OnReload: log.record})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(step, key, name string) {
		t.Helper()
		got, ok := k.Lookup(key)
		if got != name || ok != (name != "") {
			t.Errorf("%s: Lookup = %q, %v; want %q", step, got, ok, name)
		}
	}
	expect("start", keyA, "old")
	writeFile(t, path, "new:"+keyB+"\n")
	clock.add(999 * time.Millisecond)
	expect("before a second", keyA, "old")
	clock.add(time.Millisecond)
	expect("after a second, old key", keyA, "")
	expect("after a second, new key", keyB, "new")
	if got := log.take(); !cmp.Equal(got, []string{"ok"}) {
		t.Errorf("reports %q, want one ok", got)
	}

	writeFile(t, path, "new:"+keyB+"\nbad:short\n")
	for range 3 {
		clock.add(time.Second)
		expect("broken file", keyB, "new")
	}
	got := log.take()
	if len(got) != 1 || !strings.Contains(got[0], "line 2: the key is shorter") {
		t.Errorf("reports %q, want one naming line 2", got)
	}
	os.Remove(path)
	for range 3 {
		clock.add(time.Second)
		expect("missing file", keyB, "new")
	}
	if got := log.take(); len(got) != 1 || !strings.Contains(got[0], "no such file") {
		t.Errorf("reports %q, want one saying the file is missing", got)
	}
	writeFile(t, path, "third:"+keyC+"\n")
	clock.add(time.Second)
	expect("file back", keyC, "third")
	expect("file back, old key", keyB, "")
	logtest.AssertNoSecrets(t, "reports", strings.Join(log.take(), "\n"), keyA, keyB, keyC)
}

// TestKeysReload: Reload re-reads at once, changed or not, and reports a
// failure as its error.
func TestKeysReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeFile(t, path, "a:"+keyA+"\n")
	k, err := NewKeys(KeysOptions{File: path, CheckEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "b:"+keyB+"\n")
	if err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Lookup(keyA); ok {
		t.Error("the old key is accepted after Reload")
	}
	if name, _ := k.Lookup(keyB); name != "b" {
		t.Errorf("the new key = %q", name)
	}
	writeFile(t, path, "")
	if err := k.Reload(); err == nil || k.Current().Len() != 1 {
		t.Errorf("Reload of an empty file = %v, %d keys", err, k.Current().Len())
	}
	if _, err := NewKeys(KeysOptions{File: path}); err == nil {
		t.Error("NewKeys accepted an empty file")
	}
}

func TestPresentedKey(t *testing.T) {
	tcs := []struct {
		desc         string
		header       http.Header
		name, prefix string
		want         string
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + keyA}}, "Authorization", "Bearer", keyA},
		{"scheme in any case", http.Header{"Authorization": {"bEARER  " + keyA + " "}}, "Authorization", "Bearer", keyA},
		{"wrong scheme", http.Header{"Authorization": {"Basic " + keyA}}, "Authorization", "Bearer", ""},
		{"no space", http.Header{"Authorization": {"Bearer" + keyA}}, "Authorization", "Bearer", ""},
		{"scheme only", http.Header{"Authorization": {"Bearer "}}, "Authorization", "Bearer", ""},
		{"twice", http.Header{"Authorization": {"Bearer " + keyA, "Bearer " + keyB}}, "Authorization", "Bearer", ""},
		{"missing", http.Header{}, "Authorization", "Bearer", ""},
		{"bare header", http.Header{"X-Sf-Token": {keyA}}, "X-SF-Token", "", keyA},
		{"bare header empty", http.Header{"X-Sf-Token": {" "}}, "X-Sf-Token", "", ""},
	}
	for _, tc := range tcs {
		got, ok := PresentedKey(tc.header, tc.name, tc.prefix)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: PresentedKey = %q, %v; want %q", tc.desc, got, ok, tc.want)
		}
	}
}

func TestPresentedProxyKey(t *testing.T) {
	basic := func(s string) http.Header {
		return http.Header{"Proxy-Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(s))}}
	}
	tcs := []struct {
		desc   string
		header http.Header
		want   string
	}{
		{"name and key", basic("ci:" + keyA), keyA},
		{"any user", basic("whoever:" + keyA), keyA},
		{"no user", basic(":" + keyA), keyA},
		{"key holding a colon", basic("u:" + keyA + ":x"), keyA + ":x"},
		{"key as user only", basic(keyA + ":"), ""},
		{"no colon", basic(keyA), ""},
		{"not base64", http.Header{"Proxy-Authorization": {"Basic !!!"}}, ""},
		{"bearer", http.Header{"Proxy-Authorization": {"Bearer " + keyA}}, ""},
		{"missing", http.Header{}, ""},
	}
	for _, tc := range tcs {
		got, ok := PresentedProxyKey(tc.header)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: PresentedProxyKey = %q, %v; want %q", tc.desc, got, ok, tc.want)
		}
	}
}

func benchKeys(b testing.TB) *Keys {
	path := filepath.Join(b.TempDir(), "keys")
	var sb strings.Builder
	for i := range 10 {
		sb.WriteString("k" + string(rune('a'+i)) + ":" + strings.Repeat(string(rune('a'+i)), 32) + "\n")
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	k, err := NewKeys(KeysOptions{File: path})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// BenchmarkKeysLookup: a right key, and wrong keys of several lengths,
// take the same time (one hash of the presented value, ten digest
// comparisons); only the hash's length dependence shows, and it depends
// on what the caller sent, not on the keys.
func BenchmarkKeysLookup(b *testing.B) {
	k := benchKeys(b)
	for _, c := range []struct{ name, key string }{
		{"right-first", strings.Repeat("a", 32)},
		{"right-last", strings.Repeat("j", 32)},
		{"wrong-same-length", strings.Repeat("z", 32)},
		{"wrong-prefix", strings.Repeat("a", 31) + "b"},
		{"wrong-short", "zz"},
		{"wrong-40", strings.Repeat("z", 40)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k.Lookup(c.key)
			}
		})
	}
}

func TestKeysLookupDoesNotAllocate(t *testing.T) {
	k := benchKeys(t)
	h := http.Header{"Authorization": {"Bearer " + strings.Repeat("c", 32)}}
	if n := testing.AllocsPerRun(100, func() {
		v, _ := PresentedKey(h, "Authorization", "Bearer")
		if _, ok := k.Lookup(v); !ok {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("an accepted key costs %v allocations", n)
	}
}
