package keystore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Held is a cross-process lock that is held: an exclusive lock on <dir>/<name>.lock. It can be
// handed to a child process (File, as one of its extra files; the child takes it over with
// Adopt): the lock belongs to the open file, so it stays held while the child runs, even when
// the process that took it has exited or was killed. That is how a token refresh outlives the
// `get` that started it (docs/DESIGN.md, "Kill safety").
type Held struct {
	f    *os.File
	once sync.Once
}

// Acquire takes the lock <dir>/<name>.lock, waiting until ctx is done.
func Acquire(ctx context.Context, dir, name string) (*Held, error) {
	for {
		h, ok, err := TryAcquire(dir, name)
		if err != nil {
			return nil, err
		}
		if ok {
			return h, nil
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// TryAcquire takes the lock when nobody holds it; ok is false when someone does.
func TryAcquire(dir, name string) (h *Held, ok bool, err error) {
	if name == "" {
		return nil, false, fmt.Errorf("empty lock name")
	}
	if err := ensureDir(dir); err != nil {
		return nil, false, err
	}
	f, err := openLockFile(filepath.Join(dir, escapeName(name)+".lock"))
	if err != nil {
		return nil, false, fmt.Errorf("%w: lock %q: %v", ErrUnavailable, name, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() { // a FIFO, a device: not a lock
		_ = f.Close()
		return nil, false, fmt.Errorf("%w: lock %q: %s is not a regular file; remove it", ErrUnavailable, name, f.Name())
	}
	ok, err = tryLockFile(f)
	if err != nil || !ok {
		_ = f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("%w: lock %q: %v", ErrUnavailable, name, err)
		}
		return nil, false, nil
	}
	return &Held{f: f}, true, nil
}

// Adopt takes over a lock handed to this process as an open file (see Held).
func Adopt(f *os.File) *Held { return &Held{f: f} }

// File is the locked file, to hand to a child process. Call Handed once the child has started.
func (h *Held) File() *os.File { return h.f }

// Handed closes this process's copy of the lock without releasing it: the child that was
// given File holds it now, until it releases it or exits.
func (h *Held) Handed() { h.once.Do(func() { _ = h.f.Close() }) }

// Release releases the lock (for every holder of the open file). Safe to call more than once.
func (h *Held) Release() {
	h.once.Do(func() {
		_ = unlockFile(h.f)
		_ = h.f.Close()
	})
}
