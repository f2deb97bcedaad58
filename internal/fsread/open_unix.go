//go:build unix

package fsread

import (
	"io/fs"
	"os"
	"syscall"
)

// Open opens path for reading, as os.Open does (O_RDONLY|O_CLOEXEC, EINTR retried, a
// *fs.PathError on failure), in blocking mode and not registered with the network poller.
func Open(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
