//go:build unix

package e2etest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TempHome is t.TempDir for a test that runs the helper. Before the directory is removed it
// ends the helper's detached refresh and renewal children (token.Exec: they outlive the get
// that started them, holding its store locks, for up to token.JobTimeout against an issuer
// that never answers), so none of them writes into a directory being removed ("directory
// not empty"). A child gets 5 s to finish; one still running then, found by the directory
// in its environment, is killed (the test is over), and its locks must then be free.
func TempHome(t testing.TB) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		if waitLocks(dir, 5*time.Second) == "" {
			return
		}
		killChildren(dir)
		if p := waitLocks(dir, 5*time.Second); p != "" {
			t.Errorf("a detached helper still holds %s after it was killed", p)
		}
	})
	return dir
}

// waitLocks takes and lets go of each lock file under dir, within limit in all; it returns
// the first still held then, or "".
func waitLocks(dir string, limit time.Duration) (held string) {
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
				held = p
				return fs.SkipAll
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return nil
	})
	return held
}

// killChildren kills this user's processes running a refresh job (argv[1] "__refresh")
// whose environment names dir.
func killChildren(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		args, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || !bytes.Contains(args, []byte("\x00__refresh\x00")) {
			continue
		}
		env, err := os.ReadFile(filepath.Join(p, "environ"))
		if err != nil || !bytes.Contains(env, []byte(dir)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// WaitDetached waits until the helper's detached children working on the store under dir
// have finished (their locks are free): a test that changes the store behind the helper's
// back does so only once no background renewal or check can write over the change.
func WaitDetached(t testing.TB, dir string) {
	t.Helper()
	if p := waitLocks(dir, 30*time.Second); p != "" {
		t.Fatalf("a detached helper still holds %s after 30s", p)
	}
}
