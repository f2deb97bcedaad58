//go:build !unix

package keystore

import (
	"io"
	"os/exec"
)

// SudoReexec does nothing where there is no sudo; see sudo_unix.go.
func SudoReexec(getenv func(string) string, args []string, stdin io.Reader, stdout, stderr io.Writer) (ran bool, exitCode int, err error) {
	return false, 0, nil
}

// SudoRole is always "" where there is no sudo.
func SudoRole(func(string) string) string { return "" }

// SudoCommand is always nil where there is no sudo.
func SudoCommand(func(string) string, []string, string) (*exec.Cmd, error) { return nil, nil }

// RunSudoCommand runs cmd; never called where there is no sudo.
func RunSudoCommand(cmd *exec.Cmd) (int, error) {
	if err := cmd.Run(); cmd.ProcessState == nil {
		return 1, err
	}
	return cmd.ProcessState.ExitCode(), nil
}
