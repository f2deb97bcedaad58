package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The sudo story through the real /usr/bin/sudo, not an imitation of its variables: sudo
// resets the environment (HOME=/root, secure_path, no CGR_*), and the helper must still find
// the invoking user's settings and login. The user may run anything as root without a
// password (a sudoers drop-in this test writes and removes); the helper's directory is put on
// that user's secure_path, as `doctor` tells a real user to do.
func TestRealSudoSharesOneLogin(t *testing.T) {
	sw := newSudoWorld(t)
	sudo := need(t, "sudo")
	visudo := need(t, "visudo")
	crane := need(t, "crane")
	host := sw.emu.RegistryHost()
	helper := sw.helperPath()

	// crane where root may run it.
	copyExecutable(t, crane, filepath.Join(sw.bin, "crane"))
	drop := filepath.Join("/etc/sudoers.d", "cgr-test-"+sw.u.Username)
	rules := fmt.Sprintf("Defaults:%s secure_path=\"%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n%s ALL=(root) NOPASSWD: ALL\n", sw.u.Username, sw.bin, sw.u.Username)
	if err := os.WriteFile(drop, []byte(rules), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(drop) })
	if out, err := exec.Command(visudo, "-cf", drop).CombinedOutput(); err != nil {
		t.Fatalf("visudo -c %s: %v: %s", drop, err, out)
	}

	// As the user: log in, then ask through sudo.
	if r := sw.asUser("", helper, "login"); r.code != 0 {
		t.Fatalf("login as %s: exit %d: %s", sw.u.Username, r.code, r.stderr)
	}
	mine := decodeGet(t, "as the user", sw.asUser(host, helper, "get"))
	if r := sw.asUser("", sudo, "-n", "id", "-u"); r.code != 0 || strings.TrimSpace(r.stdout) != "0" {
		t.Fatalf("sudo as %s does not run as root: exit %d %q %s", sw.u.Username, r.code, r.stdout, r.stderr)
	}
	theirs := decodeGet(t, "through sudo", sw.asUser(host, sudo, "-n", "docker-credential-cgr", "get"))
	if theirs.Username != "_token" || theirs.Secret != mine.Secret {
		t.Fatalf("get through sudo: username %q and another secret: not the user's login", theirs.Username)
	}
	if r := sw.asUser("", sudo, "-n", "docker-credential-cgr", "status"); r.code != 0 || !strings.Contains(r.stdout, sw.emu.User().Email) {
		t.Fatalf("sudo docker-credential-cgr status does not show the user's login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Root's client configs in a stand-in home (the machine's /root is never touched),
	// wired by `sudo docker-credential-cgr configure`, which finds the user's settings alone.
	rootFiles := []string{
		"DOCKER_CONFIG=" + filepath.Join(sw.rootHome, ".docker"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(sw.rootHome, "auth.json"),
		"HELM_REGISTRY_CONFIG=" + filepath.Join(sw.rootHome, "helm", "config.json"),
	}
	asRoot := func(args ...string) result {
		return sw.asUser("", sudo, append(append([]string{"-n", "env"}, rootFiles...), args...)...)
	}
	if r := asRoot("docker-credential-cgr", "configure"); r.code != 0 {
		t.Fatalf("sudo docker-credential-cgr configure: exit %d: %s", r.code, r.stderr)
	}
	sw.assertWired()

	// `sudo crane` and `sudo docker pull`: root's clients exec the helper from secure_path.
	img := sw.emu.PrivateImage()
	if r := asRoot("crane", "digest", img); r.code != 0 {
		t.Fatalf("sudo crane digest %s: exit %d: %s", img, r.code, r.stderr)
	}
	if dockerUp() {
		t.Cleanup(func() { exec.Command("docker", "rmi", "-f", img).Run() })
		if r := asRoot("docker", "pull", img); r.code != 0 {
			t.Fatalf("sudo docker pull %s: exit %d: %s", img, r.code, r.stderr)
		}
		t.Logf("sudo docker pull %s: pulled through the user's login", img)
	} else {
		t.Log("no Docker Engine (docker info failed): sudo docker pull not tried; sudo crane was")
	}
	noSecretIn(t, "stderr under sudo", theirs.ServerURL, mine.Secret)
	noRootFiles(t, sw.u.HomeDir, sw.uid)
}
