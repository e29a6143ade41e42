package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteFileSyncsTheDirectoryAfterTheRename: the directory is synced
// once per write, after the rename (the file holds the new content and no
// temporary file is left when it is), and its error is returned.
func TestWriteFileSyncsTheDirectoryAfterTheRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("old-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	var synced []string
	w := Writer{SyncDir: func(d string) error {
		b, _ := os.ReadFile(path)
		left, _ := filepath.Glob(TempGlob(path))
		synced = append(synced, d+": "+string(b)+", "+filepath.Base(path)+" temporaries "+strconv.Itoa(len(left)))
		return nil
	}}
	if err := w.WriteFile(path, []byte("new-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{dir + ": new-SECRET, token temporaries 0"}
	if diff := cmp.Diff(want, synced); diff != "" {
		t.Errorf("directory syncs (-want +got):\n%s", diff)
	}

	failing := Writer{SyncDir: func(string) error { return syscall.EIO }}
	if err := failing.WriteFile(path, []byte("newer-SECRET"), 0o600); !errors.Is(err, syscall.EIO) {
		t.Errorf("a failed directory sync returned %v, want EIO", err)
	}
}

// TestWriteFileModeAndContent: the file gets exactly the mode asked for,
// whatever the umask and the old file's mode, and the content whole; a
// file name relative to the working directory works.
func TestWriteFileModeAndContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, mode := range []fs.FileMode{0o640, 0o600, 0o444} {
		if err := WriteFile(path, []byte("content-"+mode.String()), mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), mode)
		}
		if b, _ := os.ReadFile(path); string(b) != "content-"+mode.String() {
			t.Errorf("content %q", b)
		}
	}
	t.Chdir(dir)
	if err := WriteFile("relative", []byte("r"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "relative")); string(b) != "r" {
		t.Errorf("relative file holds %q", b)
	}
}

// TestWriteFileFailureLeavesNothing: when the rename fails (a directory
// is in the way) the temporary file is removed and the directory is not
// synced; a missing directory is an error that says what was attempted.
func TestWriteFileFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "inside"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := Writer{SyncDir: func(string) error { t.Error("the directory was synced after a failed rename"); return nil }}
	if err := w.WriteFile(path, []byte("SECRET"), 0o600); err == nil {
		t.Fatal("WriteFile replaced a non-empty directory")
	}
	if left, _ := filepath.Glob(TempGlob(path)); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	err := WriteFile(filepath.Join(dir, "missing", "token"), []byte("SECRET"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing directory gave %v", err)
	}
}

// TestTempGlob: the glob matches the temporary files of the file's name
// only, also when the name holds glob characters.
func TestTempGlob(t *testing.T) {
	for _, base := range []string{"token", "to[k]en*?"} {
		dir := t.TempDir()
		path := filepath.Join(dir, base)
		for _, name := range []string{"." + base + ".tmp-1", ".other.tmp-1", base + ".tmp-1", "." + base} {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		got, err := filepath.Glob(TempGlob(path))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{filepath.Join(dir, "."+base+".tmp-1")}, got); diff != "" {
			t.Errorf("%s: matches (-want +got):\n%s", base, diff)
		}
		if ok, _ := filepath.Match(TempGlob(path), filepath.Join(dir, "."+base+".tmp-123456")); !ok {
			t.Errorf("%s: the pattern does not match a temporary file's name", base)
		}
	}
}
