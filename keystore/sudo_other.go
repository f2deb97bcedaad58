//go:build !unix

package keystore

import "io"

// SudoReexec does nothing where there is no sudo; see sudo_unix.go.
func SudoReexec(getenv func(string) string, args []string, stdin io.Reader, stdout, stderr io.Writer) (ran bool, exitCode int, err error) {
	return false, 0, nil
}
