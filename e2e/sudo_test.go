package e2e

// The sudo story as a user lives it: log in as yourself, then `sudo docker pull` (the helper
// run as root with sudo's variables) uses the same login, `sudo docker-credential-cgr
// configure` wires both your files and root's, and nothing root-owned is left in your home.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// sudoWorld is a throwaway Unix user, the helper where that user can run it, and the emulator.
type sudoWorld struct {
	t        *testing.T
	emu      *emulator.Emulator
	u        *user.User
	uid, gid int
	bin      string // directory with docker-credential-cgr and cgr-emulator, 0755
	rootHome string // a stand-in HOME for root, so the machine's /root is never touched
	// runtimeDir is the user's /run/user/<uid>; "" when the test removed it.
	runtimeDir string
	rootEnv    map[string]string
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func newSudoWorld(t *testing.T) *sudoWorld {
	t.Helper()
	if os.Geteuid() != 0 {
		e2etest.Missing(t, "not root: this test creates a user (useradd) and runs the helper as root with sudo's variables")
	}
	for _, c := range []string{"useradd", "userdel", "setpriv"} {
		need(t, c)
	}
	uname := fmt.Sprintf("cgrsudo%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", uname).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", uname, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-r", uname).CombinedOutput(); err != nil {
			t.Logf("userdel -r %s: %v: %s", uname, err, out)
		}
	})
	u, err := user.Lookup(uname)
	if err != nil {
		t.Fatal(err)
	}
	sw := &sudoWorld{t: t, u: u}
	fmt.Sscan(u.Uid, &sw.uid)
	fmt.Sscan(u.Gid, &sw.gid)
	// The user's session runtime dir, as pam_systemd creates it at login: the user's
	// containers auth file is then there, whatever root's podman did to /run/containers.
	sw.runtimeDir = filepath.Join("/run/user", u.Uid)
	if err := os.MkdirAll(sw.runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sw.runtimeDir, sw.uid, sw.gid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sw.runtimeDir) })

	// The binaries, where the user can run them (TestMain's build dir is root's, 0700).
	dir, err := os.MkdirTemp("", "cgr-sudo-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyExecutable(t, helperBin, filepath.Join(dir, "docker-credential-cgr"))
	copyExecutable(t, emulatorBin, filepath.Join(dir, "cgr-emulator"))
	sw.bin = dir

	sw.emu, err = emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.emu.Close)

	sw.rootHome = t.TempDir()
	sw.rootEnv = map[string]string{
		"HOME":                 sw.rootHome,
		"USER":                 "root",
		"LOGNAME":              "root",
		"PATH":                 dir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SUDO_UID":             u.Uid,
		"SUDO_GID":             u.Gid,
		"SUDO_USER":            u.Username,
		"SUDO_COMMAND":         "/bin/sh",
		"DOCKER_CONFIG":        filepath.Join(sw.rootHome, ".docker"),
		"REGISTRY_AUTH_FILE":   filepath.Join(sw.rootHome, "auth.json"),
		"HELM_REGISTRY_CONFIG": filepath.Join(sw.rootHome, "helm", "config.json"),
		"CGR_AUTO_LOGIN":       "false",
	}
	// The user's settings live in the user's config.yaml, written by the user: Docker-launched
	// and sudo-launched runs see the same settings without any CGR_* in their environment.
	cfg := fmt.Sprintf("registry: %s\nissuer: %s\napi: %s\nstore: file\nauto_login: false\n",
		sw.emu.RegistryHost(), sw.emu.IssuerURL(), sw.emu.APIURL())
	if r := sw.asUser(cfg, "sh", "-c", `mkdir -p "$HOME/.config/docker-credential-cgr" && cat > "$HOME/.config/docker-credential-cgr/config.yaml"`); r.code != 0 {
		t.Fatalf("writing the user's config.yaml: %s", r.stderr)
	}
	return sw
}

func (sw *sudoWorld) userEnv() []string {
	env := []string{
		"HOME=" + sw.u.HomeDir, "USER=" + sw.u.Username, "LOGNAME=" + sw.u.Username,
		"PATH=" + sw.bin + ":/usr/local/bin:/usr/bin:/bin",
		"BROWSER=" + filepath.Join(sw.bin, "cgr-emulator") + " browse",
	}
	if sw.runtimeDir != "" {
		env = append(env, "XDG_RUNTIME_DIR="+sw.runtimeDir)
	}
	return env
}

func (sw *sudoWorld) exec(env []string, dir, stdin, name string, args ...string) result {
	sw.t.Helper()
	return runCommand(sw.t, env, dir, stdin, name, args...)
}

// asUser runs a command as the throwaway user, in its home, with its environment.
func (sw *sudoWorld) asUser(stdin, name string, args ...string) result {
	sw.t.Helper()
	argv := append([]string{"--reuid=" + sw.u.Uid, "--regid=" + sw.u.Gid, "--init-groups", "--", name}, args...)
	return sw.exec(sw.userEnv(), sw.u.HomeDir, stdin, "setpriv", argv...)
}

// asSudo runs a command as root with the variables `sudo` sets for the user (and nothing of
// the user's environment: sudo resets it).
func (sw *sudoWorld) asSudo(stdin, name string, args ...string) result {
	sw.t.Helper()
	var env []string
	for k, v := range sw.rootEnv {
		env = append(env, k+"="+v)
	}
	return sw.exec(env, sw.u.HomeDir, stdin, name, args...)
}

func (sw *sudoWorld) helperPath() string { return filepath.Join(sw.bin, "docker-credential-cgr") }

type credAnswer struct{ ServerURL, Username, Secret string }

func decodeGet(t *testing.T, who string, r result) credAnswer {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("get %s: exit %d: %s (stderr: %s)", who, r.code, strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
	}
	var c credAnswer
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatalf("get %s: not the protocol JSON: %v", who, err)
	}
	return c
}

// jwtSub reads a JWT's sub claim (unverified: the test only compares it).
func jwtSub(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatal("the secret is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal("the secret's claims are not base64url")
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal("the secret's claims are not JSON")
	}
	return c.Sub
}

// noRootFiles fails when anything under dir is not owned by uid.
func noRootFiles(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
			t.Errorf("%s is owned by uid %d, not the user (%d)", p, st.Uid, uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSudoSharesOneLogin(t *testing.T) {
	sw := newSudoWorld(t)
	host := sw.emu.RegistryHost()
	helper := sw.helperPath()

	// 1. The user logs in as themself.
	if r := sw.asUser("", helper, "login"); r.code != 0 {
		t.Fatalf("login as %s: exit %d: %s", sw.u.Username, r.code, r.stderr)
	}
	mine := decodeGet(t, "as the user", sw.asUser(host, helper, "get"))
	if mine.Username != "_token" || jwtSub(t, mine.Secret) != sw.emu.User().ID {
		t.Fatalf("get as the user: username %q, not the user's token", mine.Username)
	}

	// 2. `sudo docker pull` runs the helper as root with sudo's variables: same login.
	theirs := decodeGet(t, "under sudo", sw.asSudo(host, helper, "get"))
	if theirs.Username != "_token" || theirs.Secret != mine.Secret {
		t.Fatalf("get under sudo: username %q and a different secret: not the user's login", theirs.Username)
	}
	if r := sw.asSudo("", helper, "list"); r.code != 0 || !strings.Contains(r.stdout, host) {
		t.Fatalf("list under sudo: exit %d %q", r.code, r.stdout)
	}
	if r := sw.asSudo("", helper, "status", "--json"); r.code != 0 || !strings.Contains(r.stdout, sw.emu.User().Email) {
		t.Fatalf("status under sudo does not show the user's login: exit %d: %s", r.code, r.stderr)
	}
	noSecretIn(t, "the sudo runs' output", theirs.ServerURL, mine.Secret)

	// 3. `sudo CGR_REGISTRY=… docker-credential-cgr configure` wires the user's files and
	// root's. (The settings are given on sudo's command line here; that configure should
	// find them in the user's config.yaml alone is TestSudoConfigureUsesUsersSettings.)
	r := sw.asSudo("", "env", "CGR_REGISTRY="+host, "CGR_ISSUER="+sw.emu.IssuerURL(), "CGR_API="+sw.emu.APIURL(), helper, "configure")
	if r.code != 0 {
		t.Fatalf("configure under sudo: exit %d: %s", r.code, r.stderr)
	}
	sw.assertWired()
	// The user's own doctor is happy with the user's files.
	if r := sw.asUser("", helper, "doctor"); r.code != 0 {
		t.Errorf("doctor as the user after sudo configure: exit %d\n%s", r.code, r.stdout)
	}

	// 4. A pull as root under sudo (go-containerregistry execs the helper as crane does),
	// reading root's configured Docker config.
	for k, v := range sw.rootEnv {
		t.Setenv(k, v)
	}
	for _, k := range []string{"CGR_REGISTRY", "CGR_ISSUER", "CGR_API", "CGR_STORE", "CGR_STORE_DIR", "CGR_IDENTITY", "CGR_IDENTITY_TOKEN", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "CI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	ref, err := name.ParseReference(sw.emu.PrivateImage(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := remote.Image(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)); err != nil {
		t.Fatalf("pull as root under sudo: %v", err)
	}

	// 5. `sudo docker pull` with a real Docker Engine, when one answers.
	if dockerUp() {
		img := sw.emu.PrivateImage()
		t.Cleanup(func() { exec.Command("docker", "rmi", "-f", img).Run() })
		if r := sw.asSudo("", "docker", "pull", img); r.code != 0 {
			t.Errorf("sudo docker pull %s: exit %d: %s", img, r.code, r.stderr)
		} else {
			t.Logf("sudo docker pull %s: pulled through the user's login", img)
		}
	} else {
		t.Log("no Docker Engine (docker info failed): sudo docker pull not tried")
	}

	// 6. Nothing root-owned was left in the user's home.
	noRootFiles(t, sw.u.HomeDir, sw.uid)
}

// assertWired checks that the user's Docker, containers and helm files and root's route the
// emulator's registry to the helper.
func (sw *sudoWorld) assertWired() {
	t := sw.t
	t.Helper()
	host := sw.emu.RegistryHost()
	for _, f := range []string{
		filepath.Join(sw.u.HomeDir, ".docker", "config.json"),
		filepath.Join(sw.u.HomeDir, ".config", "containers", "auth.json"),
		filepath.Join(sw.u.HomeDir, ".config", "helm", "registry", "config.json"),
		filepath.Join(sw.rootEnv["DOCKER_CONFIG"], "config.json"),
		sw.rootEnv["REGISTRY_AUTH_FILE"],
		sw.rootEnv["HELM_REGISTRY_CONFIG"],
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("configure under sudo did not write %s: %v", f, err)
			continue
		}
		var c struct {
			CredHelpers map[string]string `json:"credHelpers"`
		}
		if json.Unmarshal(b, &c) != nil || c.CredHelpers[host] != "cgr" {
			t.Errorf("%s does not route %s to the helper:\n%s", f, host, b)
		}
	}
}

// `sudo docker-credential-cgr configure` with the settings only in the user's config.yaml
// (sudo resets the environment): root's run must wire the hosts the user's settings name,
// as every other sudo-launched run sees them (CONTRACT section 2).
func TestSudoConfigureUsesUsersSettings(t *testing.T) {
	sw := newSudoWorld(t)
	if r := sw.asSudo("", sw.helperPath(), "configure"); r.code != 0 {
		t.Fatalf("configure under sudo: exit %d: %s", r.code, r.stderr)
	}
	sw.assertWired()
	noRootFiles(t, sw.u.HomeDir, sw.uid)
}

func dockerUp() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info").Run() == nil
}

// rootDir is a directory of root's the user can read (mode) or not; removed afterwards.
func rootDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cgr-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// `sudo docker-credential-cgr configure` with the user's config files linked into places
// the user could not write: nothing is created or rewritten there (the user's files are
// written as the user, who cannot), the failures are named, and root's own files are
// still wired. Before, root followed the links: it created a file in a root-only directory,
// owned by the user, and rewrote a root-owned file.
func TestSudoConfigureFollowsNoLinkOfTheUser(t *testing.T) {
	sw := newSudoWorld(t)
	rootOnly := rootDir(t, 0o700)
	readable := rootDir(t, 0o755)
	rootFile := filepath.Join(readable, "auth.json")
	if err := os.WriteFile(rootFile, []byte(`{"auths":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(rootFile)
	dockerLink := filepath.Join(sw.u.HomeDir, ".docker", "config.json")
	containersLink := filepath.Join(sw.u.HomeDir, ".config", "containers", "auth.json")
	script := fmt.Sprintf(`mkdir -p "$HOME/.docker" "$HOME/.config/containers" && ln -s %s %s && ln -s %s %s`,
		filepath.Join(rootOnly, "config.json"), dockerLink, rootFile, containersLink)
	if r := sw.asUser("", "sh", "-c", script); r.code != 0 {
		t.Fatalf("linking the user's files: %s", r.stderr)
	}

	r := sw.asSudo("", sw.helperPath(), "configure")
	if out := r.stdout + r.stderr; r.code != 1 || !strings.Contains(out, sw.u.Username+": "+dockerLink+": ") || !strings.Contains(out, sw.u.Username+": "+containersLink+": ") ||
		!strings.Contains(out, "permission denied") || !strings.Contains(r.stderr, "2 config file(s) could not be changed") {
		t.Fatalf("sudo configure with links into root's places: exit %d\n%s", r.code, out)
	}
	if entries, _ := os.ReadDir(rootOnly); len(entries) != 0 {
		t.Errorf("a file was created in a root-only directory through the user's link: %v", entries)
	}
	after, _ := os.Stat(rootFile)
	if b, _ := os.ReadFile(rootFile); string(b) != `{"auths":{}}` || !after.ModTime().Equal(before.ModTime()) || after.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the root-owned file the user linked to was rewritten: %s", b)
	}
	// What could be done was done: the user's helm file (as the user) and root's files.
	for _, f := range []string{
		filepath.Join(sw.u.HomeDir, ".config", "helm", "registry", "config.json"),
		filepath.Join(sw.rootEnv["DOCKER_CONFIG"], "config.json"), sw.rootEnv["REGISTRY_AUTH_FILE"], sw.rootEnv["HELM_REGISTRY_CONFIG"],
	} {
		if b, err := os.ReadFile(f); err != nil || !strings.Contains(string(b), sw.emu.RegistryHost()) {
			t.Errorf("%s not wired: %v", f, err)
		}
	}
	noRootFiles(t, sw.u.HomeDir, sw.uid)
}

// The helper installed where the user cannot run it (root's own directory): under sudo it
// cannot work as the user, so every command stops with one line that says why and where to
// install it, and nothing of the user's runs or is touched as root: not the user's browser:
// command, not the user's store_dir. Before, root carried on with the user's config.yaml.
func TestSudoStopsWhenTheUserCannotRunIt(t *testing.T) {
	sw := newSudoWorld(t)
	hidden := filepath.Join(rootDir(t, 0o700), "docker-credential-cgr")
	copyExecutable(t, helperBin, hidden)
	marks := rootDir(t, 0o777)
	browser := filepath.Join(sw.bin, "browser")
	if err := os.WriteFile(browser, []byte(fmt.Sprintf("#!/bin/sh\nid -u >> %s/browser-ran\nexec %s browse \"$@\"\n", marks, filepath.Join(sw.bin, "cgr-emulator"))), 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(sw.u.HomeDir, "mystore")
	setting := fmt.Sprintf("browser: %s\nstore_dir: %s\n", browser, store)
	if r := sw.asUser(setting, "sh", "-c", `mkdir -m 0700 "$HOME/mystore" && cat >> "$HOME/.config/docker-credential-cgr/config.yaml"`); r.code != 0 {
		t.Fatalf("the user's settings: %s", r.stderr)
	}
	host := sw.emu.RegistryHost()
	for _, args := range [][]string{{"get"}, {"login"}, {"status"}, {"doctor"}, {"configure"}, {"logout"}} {
		r := sw.asSudo(host, hidden, args...)
		line := strings.TrimSpace(r.stderr)
		if args[0] == "get" {
			line = strings.TrimSpace(r.stdout)
		}
		if r.code == 0 || strings.Contains(line, "\n") || !strings.Contains(line, "cannot run "+hidden) ||
			!strings.Contains(line, "sudo install -m 0755 "+hidden+" /usr/local/bin/docker-credential-cgr") {
			t.Errorf("sudo %s from a root-only directory: exit %d, want one line saying where to install it; stdout %q stderr %q", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if b, err := os.ReadFile(filepath.Join(marks, "browser-ran")); err == nil {
		t.Errorf("the user's browser: command ran as uid %s", strings.TrimSpace(string(b)))
	}
	if fi, err := os.Stat(store); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the user's store_dir was changed: %v %v", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(store); len(entries) != 0 {
		t.Errorf("root wrote into the user's store: %v", entries)
	}
	noRootFiles(t, sw.u.HomeDir, sw.uid)
	if _, err := os.Stat(filepath.Join(sw.rootHome, ".local")); err == nil {
		t.Error("root carried on with a store of its own")
	}
}

// Under sudo the helper runs as the user with a listed minimal environment: root's secrets
// (cloud keys) and root's per-user paths never reach a process of the user's, where
// /proc/<pid>/environ would show them; and the helper itself keeps its environment from the
// user's other processes. The login's browser, a process of the user's started by the
// re-executed helper, records what it got.
func TestSudoChildSeesNoRootSecrets(t *testing.T) {
	sw := newSudoWorld(t)
	sw.rootEnv["AWS_SECRET_ACCESS_KEY"] = "root-aws-secret-0123456789"
	sw.rootEnv["GOOGLE_APPLICATION_CREDENTIALS"] = "/root/gcp-key.json"
	sw.rootEnv["HTTPS_PROXY"] = "http://127.0.0.1:9" // kept: the child reaches the issuer the same way...
	sw.rootEnv["NO_PROXY"] = "127.0.0.1,localhost"   // ...and the emulator is local
	logf := filepath.Join(rootDir(t, 0o777), "browser-env")
	browser := filepath.Join(sw.bin, "browser")
	script := fmt.Sprintf(`#!/bin/sh
{ echo "uid=$(id -u)"; env; if cat /proc/$PPID/environ >/dev/null 2>&1; then echo "HELPER_ENVIRON=readable"; else echo "HELPER_ENVIRON=closed"; fi; } > %s
exec %s browse "$@"
`, logf, filepath.Join(sw.bin, "cgr-emulator"))
	if err := os.WriteFile(browser, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := sw.asUser("browser: "+browser+"\n", "sh", "-c", `cat >> "$HOME/.config/docker-credential-cgr/config.yaml"`); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := sw.asSudo("", sw.helperPath(), "login"); r.code != 0 {
		t.Fatalf("sudo login: exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatalf("the browser did not run: %v", err)
	}
	env := string(b)
	if !strings.Contains(env, "uid="+sw.u.Uid+"\n") || !strings.Contains(env, "HOME="+sw.u.HomeDir+"\n") {
		t.Fatalf("the browser did not run as the user:\n%s", env)
	}
	for _, k := range []string{"AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "HELM_REGISTRY_CONFIG", "SUDO_COMMAND"} {
		if strings.Contains(env, "\n"+k+"=") || strings.HasPrefix(env, k+"=") {
			t.Errorf("root's %s reached a process of the user's", k)
		}
	}
	noSecretIn(t, "a user process's environment", env, sw.rootEnv["AWS_SECRET_ACCESS_KEY"])
	for _, k := range []string{"CGR_AUTO_LOGIN", "HTTPS_PROXY", "NO_PROXY", "SUDO_UID", "PATH"} {
		if !strings.Contains(env, "\n"+k+"=") {
			t.Errorf("%s, on the list, did not reach the child", k)
		}
	}
	if !strings.Contains(env, "HELPER_ENVIRON=closed") {
		t.Error("the helper's /proc/<pid>/environ is readable by the user's other processes")
	}
}

// A user with no session runtime dir (no /run/user/<uid>) on a machine where root's podman
// made /run/containers root-only: podman, skopeo and buildah read /run/containers/<uid>/
// auth.json first and stop at it, for every image. `sudo configure` wires the user's files as
// the user (never creating /run/containers/<uid> for them) and says what to do; doctor says it
// too; with the fix as printed skopeo pulls. In a private mount namespace, so the machine's
// /run is never touched and the test does not depend on what ran on it.
func TestSudoConfigureUserWithoutRuntimeDir(t *testing.T) {
	sw := newSudoWorld(t)
	skopeo := need(t, "skopeo")
	need(t, "unshare")
	os.RemoveAll(sw.runtimeDir)
	sw.runtimeDir = ""
	inNS := func(argv ...string) []string {
		return append([]string{"unshare", "-m", "--propagation", "private", "--", "sh", "-c",
			`mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0700 /run/containers && exec "$@"`, "sh"}, argv...)
	}
	primary := fmt.Sprintf("/run/containers/%s/auth.json", sw.u.Uid)
	persistent := filepath.Join(sw.u.HomeDir, ".config", "containers", "auth.json")
	fix := "export REGISTRY_AUTH_FILE=" + persistent

	argv := inNS(sw.helperPath(), "configure")
	r := sw.asSudo("", argv[0], argv[1:]...)
	if r.code != 0 || !strings.Contains(r.stdout, sw.u.Username+": fail: podman, skopeo and buildah read "+primary+" first and stop there, for every image") || !strings.Contains(r.stdout, "fix: "+fix) {
		t.Fatalf("sudo configure for a user without a runtime dir: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sw.assertWired()
	noRootFiles(t, sw.u.HomeDir, sw.uid)

	asUser := func(extra []string, name string, args ...string) result {
		argv := inNS(append([]string{"setpriv", "--reuid=" + sw.u.Uid, "--regid=" + sw.u.Gid, "--init-groups", "--", name}, args...)...)
		return sw.exec(append(sw.userEnv(), extra...), sw.u.HomeDir, "", argv[0], argv[1:]...)
	}
	public := "docker://" + sw.emu.PublicImage()
	if r := asUser(nil, sw.helperPath(), "doctor"); r.code != 1 || !strings.Contains(r.stdout, "fix: "+fix) {
		t.Errorf("doctor as the user: exit %d\n%s", r.code, r.stdout)
	}
	if r := asUser(nil, skopeo, "inspect", "--raw", "--tls-verify=false", public); r.code == 0 || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("skopeo without the fix: exit %d (the finding would be wrong): %s", r.code, r.stderr)
	}
	withFix := []string{"REGISTRY_AUTH_FILE=" + persistent}
	if r := asUser(withFix, skopeo, "inspect", "--raw", "--tls-verify=false", public); r.code != 0 {
		t.Errorf("skopeo with the fix as printed: exit %d: %s", r.code, r.stderr)
	}
	if r := asUser(withFix, sw.helperPath(), "doctor", "--json"); !strings.Contains(r.stdout, `"check": "containers config"`) || strings.Contains(r.stdout, primary) {
		t.Errorf("doctor with the fix still names %s:\n%s", primary, r.stdout)
	}
}
