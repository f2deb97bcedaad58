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
	rootEnv  map[string]string
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
	return []string{
		"HOME=" + sw.u.HomeDir, "USER=" + sw.u.Username, "LOGNAME=" + sw.u.Username,
		"PATH=" + sw.bin + ":/usr/local/bin:/usr/bin:/bin",
		"BROWSER=" + filepath.Join(sw.bin, "cgr-emulator") + " browse",
	}
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
