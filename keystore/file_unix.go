//go:build unix

package keystore

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// renameOpenFile: the temp file stays open, and locked, through its rename.
const renameOpenFile = true

// lockTemp takes the exclusive lock a writer holds on its temp file until the rename. It
// does not wait: a lock already held means another run took the file for abandoned.
func lockTemp(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return &fs.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return nil
}

// removeAbandoned removes the temp file at path when no writer holds its lock, and
// reports whether it did. It is opened without following a link, and without blocking on
// whatever else may have been put there.
func removeAbandoned(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false // its writer is still at work
	}
	err = os.Remove(path)
	return err == nil || errors.Is(err, syscall.ENOENT)
}
