//go:build unix

package e2etest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TempHome is t.TempDir for a test that runs the helper: before the directory is removed,
// it waits for the helper's detached refresh and renewal children (token.Exec: they outlive
// the `get` that started them, holding its store locks) to finish, so none of them writes
// into a directory being removed ("directory not empty"). Each lock file under it is taken
// and let go; a child still holding one after 30 s fails the test.
func TempHome(t testing.TB) string {
	dir := t.TempDir()
	t.Cleanup(func() { waitLocks(t, dir, 30*time.Second) })
	return dir
}

func waitLocks(t testing.TB, dir string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".lock") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			if time.Now().After(deadline) {
				t.Errorf("a detached helper still holds %s after %v", p, limit)
				return fs.SkipAll
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return nil
	})
}
