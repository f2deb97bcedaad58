//go:build !unix

package keystore

import (
	"os"
	"sync"

	"github.com/gofrs/flock"
)

// On other systems the lock is gofrs/flock's (LockFileEx on Windows); it cannot be handed
// to a child process, so refreshes run in the process that took the lock there.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func tryLockFile(f *os.File) (bool, error) {
	fl := flock.New(f.Name())
	ok, err := fl.TryLock()
	if ok {
		lockers.Store(f, fl)
	}
	return ok, err
}

func unlockFile(f *os.File) error {
	if v, ok := lockers.LoadAndDelete(f); ok {
		return v.(*flock.Flock).Unlock()
	}
	return nil
}

var lockers sync.Map // *os.File → *flock.Flock
