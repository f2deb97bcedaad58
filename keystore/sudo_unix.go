//go:build unix

package keystore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sudoMarker marks the re-executed child, so it never re-executes again.
const sudoMarker = "CGR_SUDO_REEXEC"

// SudoReexec makes `sudo docker-credential-cgr ...` (and `sudo docker pull`, which runs
// the helper as root with SUDO_* set) work as the invoking user, on that user's store,
// leaving no root-owned file in the user's home (CONTRACT section 3).
//
// When the effective uid is 0, SUDO_UID is set and not 0, CGR_SUDO_SHARE does not opt
// out (SudoShareDisabled) and this is not already the re-executed child, it runs
// os.Executable() with args as that
// user (uid, gid, supplementary groups), with HOME, USER and LOGNAME of that user, the
// user's XDG_RUNTIME_DIR and session bus when they exist, root's XDG_*_HOME and D-Bus
// variables dropped, and everything else (CGR_* included) kept. It returns ran=true and
// the child's exit code; the caller then exits with it.
//
// ran=false means: carry on as this process. That includes the case where the user cannot
// execute the binary (say it lives under /root): a line on stderr says so, and the
// helper then runs as root on root's own store, so `sudo docker pull` does not see the
// user's login. err is non-nil only when the re-exec failed for another reason; the caller
// may report it and carry on.
func SudoReexec(getenv func(string) string, args []string, stdin io.Reader, stdout, stderr io.Writer) (ran bool, exitCode int, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if os.Geteuid() != 0 || getenv(sudoMarker) != "" {
		return false, 0, nil
	}
	sudoUID := getenv("SUDO_UID")
	if sudoUID == "" || sudoUID == "0" {
		return false, 0, nil
	}
	if SudoShareDisabled(getenv) {
		return false, 0, nil
	}
	uid, err := strconv.ParseUint(sudoUID, 10, 32)
	if err != nil {
		return false, 0, fmt.Errorf("SUDO_UID %q is not a uid", sudoUID)
	}
	u, err := user.LookupId(sudoUID)
	if err != nil {
		return false, 0, fmt.Errorf("looking up the sudo user %s: %w", sudoUID, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if g := getenv("SUDO_GID"); g != "" {
		gid, err = strconv.ParseUint(g, 10, 32)
	}
	if err != nil {
		return false, 0, fmt.Errorf("the sudo user's group: %w", err)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				groups = append(groups, uint32(g))
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return false, 0, fmt.Errorf("finding this program: %w", err)
	}

	cmd := exec.Command(exe, args...)
	cmd.Env = sudoEnv(os.Environ(), u, uid)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups},
	}
	// The working directory is kept: relative paths in args mean what the user meant.
	// Ctrl-C reaches the child through the terminal's process group; relay signals sent
	// to us alone (kill, a parent's timeout) and stay alive to report its exit code.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			fmt.Fprintf(stderr, "docker-credential-cgr: cannot run %s as %s (permission denied), so this sudo run uses root's own store, not %s's; install the program where every user can run it (e.g. /usr/local/bin) to share one login\n", exe, u.Username, u.Username)
			return false, 0, nil
		}
		return false, 0, fmt.Errorf("running as %s: %w", u.Username, err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true, 128 + int(ws.Signal()), nil
		}
		return true, ee.ExitCode(), nil
	}
	if err != nil {
		return true, 1, err
	}
	return true, 0, nil
}

// sudoEnv is root's environment turned into the user's: identity and per-user
// directories of the user, root's own XDG base directories and bus dropped.
func sudoEnv(environ []string, u *user.User, uid uint64) []string {
	env := make([]string, 0, len(environ)+6)
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "USER", k == "LOGNAME", k == "XDG_RUNTIME_DIR",
			k == "DBUS_SESSION_BUS_ADDRESS", k == sudoMarker,
			strings.HasPrefix(k, "XDG_") && strings.HasSuffix(k, "_HOME"):
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username, sudoMarker+"=1")
	rd := filepath.Join("/run/user", strconv.FormatUint(uid, 10))
	if fi, err := os.Stat(rd); err == nil && fi.IsDir() {
		env = append(env, "XDG_RUNTIME_DIR="+rd)
		if fi, err := os.Stat(filepath.Join(rd, "bus")); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			env = append(env, "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(rd, "bus"))
		}
	}
	return env
}
