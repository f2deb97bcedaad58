package keystore

import (
	"os"
	"strings"
)

// SudoShareDisabled reports whether CGR_SUDO_SHARE opts out of sharing the invoking
// user's store under sudo: "false", "f", "0", "no", "n" or "off" (the false words of every
// yes/no setting), in any case, spaces trimmed.
// Anything else, unset included, means share (CONTRACT section 3). A nil getenv reads
// the process environment.
func SudoShareDisabled(getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	switch strings.ToLower(strings.TrimSpace(getenv("CGR_SUDO_SHARE"))) {
	case "false", "f", "0", "no", "n", "off":
		return true
	}
	return false
}

// sudoMarker marks a child started by SudoCommand; its value is the child's role.
const sudoMarker = "CGR_SUDO_REEXEC"

// SudoError says why this program cannot run as the invoking user under sudo, and how to
// fix it, in one line. The run stops there: it never carries on as root.
type SudoError struct{ msg string }

func (e *SudoError) Error() string { return e.msg }
