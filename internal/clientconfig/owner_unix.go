//go:build unix

package clientconfig

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

func fileOwner(fi fs.FileInfo) (owner, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}, false
	}
	return owner{int(st.Uid), int(st.Gid)}, true
}

// dirWritable: whether this process may create and replace files in dir (a fix that
// writes there needs no sudo).
func dirWritable(dir string) bool { return unix.Access(dir, unix.W_OK) == nil }
