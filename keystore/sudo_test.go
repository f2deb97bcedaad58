//go:build linux

package keystore

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// testUser creates a throwaway user with a home directory and removes it afterwards.
func testUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test creates a user and runs as root under a fake sudo")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("useradd not installed")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "cgrtest" + hex.EncodeToString(b[:])
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-r", name).CombinedOutput(); err != nil {
			t.Logf("userdel: %v: %s", err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// copyExe puts the test binary where any user can run it.
func copyExe(t *testing.T) string { return copyExeMode(t, 0o755) }

// copyExeMode copies the test binary into a new directory of the given mode.
func copyExeMode(t *testing.T, mode os.FileMode) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cgr-sudo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "keystore.test")
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func sudoCmd(exe string, u *user.User, extra ...string) *exec.Cmd {
	cmd := exec.Command(exe, "-test.run=^$")
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SUDO_") && !strings.HasPrefix(kv, "XDG_DATA_HOME=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, helperEnv+"=sudo",
		"SUDO_UID="+u.Uid, "SUDO_GID="+u.Gid, "SUDO_USER="+u.Username,
		"HOME=/root", "XDG_DATA_HOME=/root/.local/share") // root's, as sudo leaves them
	cmd.Env = append(cmd.Env, extra...)
	return cmd
}

func TestSudoReexecAsInvokingUser(t *testing.T) {
	u := testUser(t)
	exe := copyExe(t)
	// The user's session bus, as systemd-logind would provide it.
	rd := filepath.Join("/run/user", u.Uid)
	if err := os.MkdirAll(rd, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rd) })
	l, err := net.Listen("unix", filepath.Join(rd, "bus"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr bytes.Buffer
	cmd := sudoCmd(exe, u, "DBUS_SESSION_BUS_ADDRESS=unix:path=/tmp/root-bus", "XDG_RUNTIME_DIR=/run/user/0",
		"XDG_CONFIG_HOME=/root/.config", "CGR_KEEP_ME=kept", "CGR_SUDO_REEXEC=forged",
		// root's own secrets and paths, which a process of the user's must not see
		"AWS_SECRET_ACCESS_KEY=root-aws-secret", "GITHUB_TOKEN=root-gh-token", "DOCKER_CONFIG=/root/.docker",
		"REGISTRY_AUTH_FILE=/root/auth.json", "XAUTHORITY=/root/.Xauthority", "TMPDIR=/root/tmp",
		"HTTPS_PROXY=http://proxy.example:3128", "LC_ALL=C.UTF-8", "TERM=xterm")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("exit: %v (want the child's code 7); stderr: %s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"uid=" + u.Uid + "\n", "home=" + u.HomeDir + "\n", "xdg_data_home=\n",
		"xdg_runtime_dir=" + rd + "\n", "dbus=unix:path=" + rd + "/bus\n", "cgr=kept\n",
		"role=1\n",
		"dir=" + filepath.Join(u.HomeDir, ".local/share/docker-credential-cgr") + "\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("child output %q lacks %q", out, want)
		}
	}
	// The child's environment is the listed minimum (sudoKeep), nothing else of root's.
	_, envLine, _ := strings.Cut(out, "env=")
	envLine, _, _ = strings.Cut(envLine, "\n")
	allowed := map[string]bool{"HOME": true, "USER": true, "LOGNAME": true, "XDG_RUNTIME_DIR": true, "DBUS_SESSION_BUS_ADDRESS": true, "CGR_SUDO_REEXEC": true}
	got := map[string]bool{}
	for _, k := range strings.Split(envLine, ",") {
		got[k] = true
		if !allowed[k] && !sudoKeep(k) {
			t.Errorf("the child got %s, which is not on the list", k)
		}
	}
	for _, k := range []string{"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XAUTHORITY", "TMPDIR", "XDG_CONFIG_HOME"} {
		if got[k] {
			t.Errorf("root's %s reached the user's process", k)
		}
	}
	for _, k := range []string{"HTTPS_PROXY", "LC_ALL", "TERM", "PATH", "SUDO_UID", "CGR_KEEP_ME"} {
		if !got[k] {
			t.Errorf("%s did not reach the child", k)
		}
	}
	// The store is the user's, and nothing in the user's home belongs to root.
	secret := filepath.Join(u.HomeDir, ".local/share/docker-credential-cgr", fileName("session/issuer.example"))
	fi, err := os.Stat(secret)
	if err != nil {
		t.Fatalf("the file store was not written under the user's home: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fmt.Sprint(st.Uid) != u.Uid || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file owned by %d mode %v", st.Uid, fi.Mode().Perm())
	}
	err = filepath.WalkDir(u.HomeDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); fmt.Sprint(st.Uid) != u.Uid {
			t.Errorf("%s is owned by uid %d, not the user", p, st.Uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/root/.local/share/docker-credential-cgr/" + fileName("session/issuer.example")); err == nil {
		t.Error("the secret went to root's store")
	}
}

func TestSudoReexecOptOutAndUnreachableBinary(t *testing.T) {
	u := testUser(t)
	// CGR_SUDO_SHARE=false: no re-exec, the helper runs as root.
	var stdout, stderr bytes.Buffer
	home := t.TempDir()
	cmd := sudoCmd(copyExe(t), u, "CGR_SUDO_SHARE=false", "HOME="+home)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	if !strings.Contains(stdout.String(), "uid=0\n") {
		t.Fatalf("with CGR_SUDO_SHARE=false: %q %q", stdout.String(), stderr.String())
	}

	// A binary in a 0700 root directory the user cannot enter: one line that says why and
	// where to install it, and the helper stops: it never carries on as root.
	self := copyExeMode(t, 0o700)
	home = t.TempDir()
	stdout.Reset()
	stderr.Reset()
	cmd = sudoCmd(self, u, "HOME="+home)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	line := strings.TrimSpace(stderr.String())
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || strings.Contains(stdout.String(), "uid=") ||
		strings.Count(line, "\n") != 0 || !strings.Contains(line, "cannot run "+self) || !strings.Contains(line, "install -m 0755 "+self+" /usr/local/bin/") {
		t.Fatalf("unreachable binary: %v, stdout %q, stderr %q", err, stdout.String(), line)
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Fatalf("root wrote into HOME after the re-exec failed: %v", entries)
	}
}
