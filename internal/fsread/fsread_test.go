//go:build unix

package fsread

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ReadFile reads what os.ReadFile reads, at every size around its buffer's edges, and fails
// where it fails with the same kind of error.
func TestReadFileAsOS(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 511, 512, 513, 736, 4095, 4096, 4097, 1 << 20} {
		p := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		if err := os.WriteFile(p, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d bytes, err %v", n, len(got), err)
		}
	}
	_, err := ReadFile(filepath.Join(dir, "missing"))
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" {
		t.Fatalf("missing file: %v, want an open *fs.PathError that is fs.ErrNotExist", err)
	}
	_, osErr := os.ReadFile(dir)
	if _, err := ReadFile(dir); err == nil || !errors.Is(err, syscall.EISDIR) || !errors.Is(osErr, syscall.EISDIR) {
		t.Fatalf("a directory: %v (os.ReadFile: %v), want EISDIR from both", err, osErr)
	}
}

// A file from Open is in blocking mode and not in the network poller: deadlines are refused,
// as they are for any file the poller does not hold. A FIFO is the case where os.Open would
// have put it there.
func TestOpenSkipsThePoller(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	w, err := os.OpenFile(p, os.O_RDWR, 0) // keeps the FIFO open so that opening it does not block
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	viaOS, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer viaOS.Close()
	if err := viaOS.SetReadDeadline(deadline()); err != nil {
		t.Fatalf("os.Open's FIFO takes no deadline (%v): this test no longer shows the difference", err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.SetReadDeadline(deadline()); !errors.Is(err, os.ErrNoDeadline) {
		t.Fatalf("SetReadDeadline on Open's file: %v, want os.ErrNoDeadline (not in the poller)", err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if n, err := f.Read(b); n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("read %d %q %v", n, b[:n], err)
	}
}

func deadline() time.Time { return time.Now().Add(time.Hour) }
