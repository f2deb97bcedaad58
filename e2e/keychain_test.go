package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// The binary on a real Secret Service: login, get, docker login/logout with a pull token,
// all kept in gnome-keyring and nothing in the file store. The suite's shared keyring is
// locked and emptied by the keystore tests running alongside, so this test re-runs itself
// on a private keyring of its own (scripts/with-keyring.sh always makes a fresh one).
func TestKeychainThroughBinary(t *testing.T) {
	if os.Getenv("CGR_IT_PRIVATE_KEYRING") != "1" {
		script := repoPath("scripts", "with-keyring.sh")
		cmd := exec.Command(script, os.Args[0], "-test.run", "^TestKeychainThroughBinary$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "CGR_IT_PRIVATE_KEYRING=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestKeychainThroughBinary") {
			t.Fatalf("on a private keyring: %v\n%s", err, out)
		}
		return
	}
	need(t, "docker")
	bus := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if bus == "" {
		t.Fatal("no session bus inside scripts/with-keyring.sh")
	}
	w := newWorld(t, emulator.Options{})
	w.env["CGR_STORE"] = "keychain"
	w.env["DBUS_SESSION_BUS_ADDRESS"] = bus
	w.login()
	host := w.emu.RegistryHost()
	if user, _, r := w.get(host); r.code != 0 || user != "_token" {
		t.Fatalf("get from the keychain: exit %d %s", r.code, r.stdout)
	}
	id, tok := w.pullToken()
	if r := w.run(tok, "docker", "login", host, "-u", id, "--password-stdin"); r.code != 0 {
		t.Fatalf("docker login: %s", r.stderr)
	}
	if user, secret, r := w.get(host); r.code != 0 || user != id || secret != tok {
		t.Fatalf("get after docker login: exit %d, user %q", r.code, user)
	}
	if r := w.helper("", "status"); r.code != 0 || !strings.Contains(r.stdout, "Secret Service") {
		t.Fatalf("status does not name the keychain: %s", r.stdout)
	}
	// The secrets are in gnome-keyring, not in files.
	if r := w.run("", "secret-tool", "search", "--all", "service", "docker-credential-cgr"); !strings.Contains(r.stdout+r.stderr, "pull/"+host) {
		t.Fatalf("gnome-keyring holds no pull/%s item", host)
	}
	if files, _ := filepath.Glob(filepath.Join(w.storeDir(), "*.secret")); len(files) != 0 {
		t.Fatalf("secrets written to the file store with CGR_STORE=keychain: %v", files)
	}
	if r := w.run("", "docker", "logout", host); r.code != 0 {
		t.Fatalf("docker logout: %s", r.stderr)
	}
	if _, _, r := w.get(host); r.code != 1 {
		t.Fatalf("get after docker logout: exit %d; want not found", r.code)
	}
}
