// Package coredump keeps a process that holds secrets (a refresh token, a pull token) from
// leaving them in a core dump, and other processes of the same user from reading its memory.
package coredump

// Disable turns core dumps off for this process: RLIMIT_CORE 0 on unix, and on Linux also
// PR_SET_DUMPABLE 0, which stops cores piped to a handler (systemd-coredump, apport) that
// ignore the limit and makes /proc/<pid>/mem, environ and ptrace root's alone. main calls it
// first; an error means the platform refused, which is reported nowhere (the helper must still
// answer) but tested.
func Disable() error { return disable() }
