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

// SudoReexec makes `sudo docker-credential-cgr ...` (and `sudo docker pull`, which runs
// the helper as root with SUDO_* set) work as the invoking user, on that user's store and
// with that user's settings, leaving no root-owned file in the user's home (CONTRACT
// sections 3 and 3a).
//
// When the effective uid is 0, SUDO_UID is set and not 0 and CGR_SUDO_SHARE does not opt
// out (SudoShareDisabled), it runs this program again with args as that user (SudoCommand)
// and returns ran=true and the child's exit code; the caller exits with it. ran=false and
// a nil error: not under sudo, carry on.
//
// When the program cannot run as the user (the user cannot execute it, say it lives under
// /root; the user does not exist), err is a *SudoError: the caller prints its one line and
// stops. It never carries on as root: root would then read the user's config.yaml (a
// `browser:` command, a store dir) or, with HOME kept by sudo, write root-owned files into
// the user's store.
func SudoReexec(getenv func(string) string, args []string, stdin io.Reader, stdout, stderr io.Writer) (ran bool, exitCode int, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if SudoShareDisabled(getenv) {
		return false, 0, nil
	}
	cmd, err := SudoCommand(getenv, args, "1")
	if cmd == nil || err != nil {
		return false, 0, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	code, err := RunSudoCommand(cmd)
	if err != nil {
		var se *SudoError
		if errors.As(err, &se) {
			return false, 0, err
		}
		return true, 1, err
	}
	return true, code, nil
}

// SudoRole is the role a re-executed child was given (SudoCommand's role): "" when this
// process was not started by SudoCommand.
func SudoRole(getenv func(string) string) string {
	if os.Geteuid() == 0 {
		return "" // a child runs as the invoking user, never as root
	}
	return getenv(sudoMarker)
}

// sudoUser is the invoking user of a sudo run.
type sudoUser struct {
	u        *user.User
	uid, gid uint32
	groups   []uint32
}

// invokingUser is the user who ran sudo, or nil when this is not a sudo run for another
// user (effective uid not 0, SUDO_UID unset or 0).
func invokingUser(getenv func(string) string) (*sudoUser, error) {
	sudoUID := getenv("SUDO_UID")
	if os.Geteuid() != 0 || sudoUID == "" || sudoUID == "0" {
		return nil, nil
	}
	uid, err := strconv.ParseUint(sudoUID, 10, 32)
	if err != nil {
		return nil, &SudoError{fmt.Sprintf("under sudo this program works as the user who ran sudo, but SUDO_UID %q is not a uid; run it through sudo itself, or set CGR_SUDO_SHARE=false to give root a login of its own", sudoUID)}
	}
	u, err := user.LookupId(sudoUID)
	if err != nil {
		return nil, &SudoError{fmt.Sprintf("under sudo this program works as the user who ran sudo (uid %s), who cannot be looked up (%v); set CGR_SUDO_SHARE=false to give root a login of its own", sudoUID, err)}
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if g := getenv("SUDO_GID"); g != "" {
		gid, err = strconv.ParseUint(g, 10, 32)
	}
	if err != nil {
		return nil, &SudoError{fmt.Sprintf("under sudo this program works as %s, whose group is not known (%v); set CGR_SUDO_SHARE=false to give root a login of its own", u.Username, err)}
	}
	su := &sudoUser{u: u, uid: uint32(uid), gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				su.groups = append(su.groups, uint32(g))
			}
		}
	}
	return su, nil
}

// SudoCommand is this program run again with args as the user who ran sudo: that user's
// uid, gid and groups, and the minimal environment of sudoEnv, with CGR_SUDO_REEXEC=role.
// It is nil (and err nil) when this is not a sudo run for another user. It ignores
// CGR_SUDO_SHARE: `configure` writes the user's files as the user whatever root's store is.
func SudoCommand(getenv func(string) string, args []string, role string) (*exec.Cmd, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	su, err := invokingUser(getenv)
	if su == nil || err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, &SudoError{fmt.Sprintf("under sudo this program works as %s, but cannot find its own path to run itself again (%v); run it without sudo", su.u.Username, err)}
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = sudoEnv(os.Environ(), su.u, role)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: su.uid, Gid: su.gid, Groups: su.groups},
	}
	// The working directory is kept: relative paths in args mean what the user meant.
	return cmd, nil
}

// RunSudoCommand runs a SudoCommand and returns its exit code (128+n when a signal n ended
// it). It relays SIGINT, SIGTERM and SIGHUP sent to this process alone (kill, a parent's
// timeout); Ctrl-C reaches the child through the terminal's process group anyway. A
// program the user cannot execute is a *SudoError that says where to install it.
func RunSudoCommand(cmd *exec.Cmd) (exitCode int, err error) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		name := "the user who ran sudo"
		if cmd.SysProcAttr != nil && cmd.SysProcAttr.Credential != nil {
			if u, uerr := user.LookupId(strconv.FormatUint(uint64(cmd.SysProcAttr.Credential.Uid), 10)); uerr == nil {
				name = u.Username
			}
		}
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
			return 0, &SudoError{fmt.Sprintf("under sudo this program works as %s, on %s's login and settings, but %s cannot run %s (%v); install it where every user can run it: sudo install -m 0755 %s /usr/local/bin/%s",
				name, name, name, cmd.Path, pathErrCause(err), cmd.Path, filepath.Base(cmd.Path))}
		}
		return 0, &SudoError{fmt.Sprintf("under sudo this program works as %s, but running it as %s failed: %v", name, name, err)}
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
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// sudoEnv is the environment of the child run as the invoking user: not root's, which may
// hold root's own secrets (cloud keys, tokens) that a process of the user's must not see in
// /proc/<pid>/environ, nor root's per-user paths (DOCKER_CONFIG, XDG_*), which would send
// the user's run to root's files. Only what sudoKeep lists passes, then the user's
// identity and per-user directories are set.
func sudoEnv(environ []string, u *user.User, role string) []string {
	env := make([]string, 0, 24)
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); sudoKeep(k) {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username, sudoMarker+"="+role)
	rd := filepath.Join("/run/user", u.Uid)
	if fi, err := os.Stat(rd); err == nil && fi.IsDir() {
		env = append(env, "XDG_RUNTIME_DIR="+rd)
		if fi, err := os.Stat(filepath.Join(rd, "bus")); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			env = append(env, "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(rd, "bus"))
		}
	}
	return env
}

// sudoKeep lists the variables of root's environment the re-executed child keeps, each for
// a reason; everything else is dropped:
//   - CGR_* (but the re-exec marker, which is set anew): this program's settings, so a sudo
//     run behaves as the user asked (CGR_REGISTRY, CGR_STORE_DIR, CGR_IDENTITY_TOKEN, ...);
//   - BROWSER, CI, GITHUB_ACTIONS, ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN: settings it
//     reads too (the login opener, CI detection, GitHub Actions' workload identity);
//   - SUDO_UID, SUDO_GID, SUDO_USER: so doctor and configure know it is a sudo run;
//   - PATH: to find the login opener and the clients doctor runs (sudo's secure_path);
//   - HTTP(S)_PROXY, NO_PROXY, ALL_PROXY (either case), SSL_CERT_FILE, SSL_CERT_DIR: the
//     same way out to the issuer as the parent;
//   - TERM, COLORTERM, NO_COLOR, LANG, LANGUAGE, LC_*, TZ: how to talk to the terminal;
//   - DISPLAY, WAYLAND_DISPLAY: where a login's browser opens (XAUTHORITY is not kept: it
//     may be root's cookie for root's display).
//
// HOME, USER, LOGNAME, XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS are the user's own
// (sudoEnv); DOCKER_CONFIG, REGISTRY_AUTH_FILE, HELM_*, XDG_*_HOME, TMPDIR are not passed,
// so the user's files are where they are by default.
func sudoKeep(k string) bool {
	switch k {
	case sudoMarker:
		return false
	case "BROWSER", "CI", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
		"SUDO_UID", "SUDO_GID", "SUDO_USER",
		"PATH",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
		"SSL_CERT_FILE", "SSL_CERT_DIR",
		"TERM", "COLORTERM", "NO_COLOR", "LANG", "LANGUAGE", "TZ",
		"DISPLAY", "WAYLAND_DISPLAY":
		return true
	}
	return strings.HasPrefix(k, "CGR_") || strings.HasPrefix(k, "LC_")
}
