package keystore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLockAcrossProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locks")
	const procs, n = 5, 100
	var outs []*bytes.Buffer
	var waits []func() error
	for i := 0; i < procs; i++ {
		c := helperCmd(t, "locker", "CGR_HELPER_DIR="+dir, fmt.Sprintf("CGR_HELPER_N=%d", n))
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, &out)
		waits = append(waits, c.Wait)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Errorf("process %d: %v: %s", i, err, outs[i])
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "mutex.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestLockHeldTimesOutWithContextError(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	unlock, err := Lock(ctx, dir, "refresh-127.0.0.1:1234")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := Lock(short, dir, "refresh-127.0.0.1:1234"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held: %v, want a deadline error", err)
	}
	unlock()
	unlock() // safe twice
	again, err := Lock(ctx, dir, "refresh-127.0.0.1:1234")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
	// Distinct names do not exclude each other.
	a, err := Lock(ctx, dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer a()
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
	defer bcancel()
	b, err := Lock(bctx, dir, "b")
	if err != nil {
		t.Fatalf("Lock b while a held: %v", err)
	}
	b()
}

// A link planted where a lock file goes is refused, not followed: under sudo, root would
// otherwise create or open whatever file the link names.
func TestLockRefusesPlantedLink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "etc-something")
	if err := os.Symlink(target, filepath.Join(dir, "refresh.lock")); err != nil {
		t.Fatal(err)
	}
	_, err := Lock(context.Background(), dir, "refresh")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Lock through a planted link: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the link's target was created: %v", err)
	}
	// A FIFO (or anything but a regular file) is refused as well, without hanging.
	if err := syscallMkfifo(filepath.Join(dir, "fifo.lock")); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Lock(ctx, dir, "fifo"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Lock on a FIFO: %v", err)
	}
}
