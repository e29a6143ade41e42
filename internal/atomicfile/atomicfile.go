// Package atomicfile replaces a file's content so that a reader sees the
// old content or the new, whole, and so that after a crash the disk holds
// one of the two as well: a temporary file in the same directory is
// written, given its mode and synced, renamed over the file, and the
// directory is synced. Without the last step the rename may not survive a
// crash, and the file comes back with its old content: for a rotated
// refresh token, one already used and so dead.
//
// The token sink (tokensink) and the refresh-token write-back
// (exchange.OAuth2RefreshToken) both write through it.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Writer replaces files atomically. The zero value is ready to use; only
// tests set its field.
type Writer struct {
	// SyncDir, when set, replaces the fsync of the directory that makes
	// the rename durable; it is called with the directory after the
	// rename, so a test can assert that it happens, and when.
	SyncDir func(dir string) error
}

// WriteFile replaces path with data, with the zero Writer.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return Writer{}.WriteFile(path, data, mode)
}

// TempPattern is the os.CreateTemp pattern of the temporary files
// WriteFile creates beside path: "."+base+".tmp-*". A process killed
// mid-write leaves one behind; TempGlob finds them.
func TempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp-*"
}

// TempGlob returns a filepath.Glob pattern matching the temporary files
// WriteFile creates beside path (see TempPattern), with the glob
// characters of the file's name quoted.
func TempGlob(path string) string {
	dir, base := filepath.Split(path)
	return filepath.Join(dir, "."+globEscape(base)+".tmp-*")
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

// WriteFile replaces path with data atomically and durably. The directory
// must exist. The temporary file is created with mode 0600
// (os.CreateTemp) and given mode with chmod, so the umask does not narrow
// it, before it is synced and renamed: the content is never readable
// under path with another mode. On an error before the rename the
// temporary file is removed and path is untouched; an error syncing the
// directory comes after the rename, when path already holds data.
func (w Writer) WriteFile(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPattern(path))
	if err != nil {
		return fmt.Errorf("create a temporary file beside it: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // a second Close after the first fails harmlessly
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	// The mode is set before the sync so that it is durable with the
	// content.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir := w.SyncDir
	if syncDir == nil {
		syncDir = fsyncDir
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync the directory: %w", err)
	}
	return nil
}

// fsyncDir makes the directory's entries, the rename among them, durable.
func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
