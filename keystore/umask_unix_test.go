//go:build unix

package keystore

import "syscall"

func setUmask(m int) (restore func()) {
	old := syscall.Umask(m)
	return func() { syscall.Umask(old) }
}

func syscallMkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }
