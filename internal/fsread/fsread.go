// Package fsread opens and reads files as os.Open and os.ReadFile do, minus os.Open's offer
// of every file to the runtime's network poller.
//
// On Linux, os.Open hands each descriptor it opens to the poller (epoll). The first time,
// that creates the poller: epoll_create1, an eventfd, and another thread woken to wait on it.
// For a regular file or a directory epoll then refuses (EPERM), after four fcntl calls that
// set and clear O_NONBLOCK. A file-store `get` opens config.yaml, the store directory and a
// secret, none of which can be polled, and paid 17 system calls and a thread wake-up for the
// offer. os.NewFile on a descriptor in blocking mode never makes it: that is all this
// package does differently, which is why it is written here and not taken from a library.
package fsread

import (
	"io"
	"slices"
)

// ReadFile is os.ReadFile, read through Open.
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := 512
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() < 1<<30 {
		size = max(size, int(fi.Size())+1) // +1: the read that sees the end
	}
	b := make([]byte, 0, size)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch {
		case err == io.EOF:
			return b, nil
		case err != nil:
			return b, err // as os.ReadFile: what was read, and why it stopped
		case len(b) == cap(b):
			b = slices.Grow(b, cap(b))
		}
	}
}
