package e2e

// Real clients after `configure`: the docker CLI (login/logout through the helper, and a
// pull when a Docker Engine answers), go-containerregistry, skopeo and helm (push and pull
// of an OCI chart), all against the emulator in an isolated HOME.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

var depsOnce sync.Once

// helmBin is scripts/deps.sh's helm (.cache/bin/helm); it runs deps.sh once when missing.
// CI installs helm, so a missing helm fails the test.
func helmBin(t *testing.T) string {
	t.Helper()
	p := repoPath(".cache", "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		depsOnce.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, repoPath("scripts", "deps.sh"))
			cmd.Dir = repoRoot
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Logf("scripts/deps.sh: %v\n%s", err, out)
			}
		})
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm is not installed at %s: run scripts/deps.sh", p)
	}
	return p
}

// helmChart writes a tiny chart and packages it; it returns the .tgz.
func (w *world) helmChart(chartName, version string) string {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), chartName)
	w.write(filepath.Join(dir, "Chart.yaml"), "apiVersion: v2\nname: "+chartName+"\nversion: "+version+"\ndescription: a test chart\ntype: application\n")
	w.write(filepath.Join(dir, "templates", "configmap.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  hello: world\n")
	out := w.t.TempDir()
	if r := w.run("", helmBin(w.t), "package", dir, "-d", out); r.code != 0 {
		w.t.Fatalf("helm package: exit %d: %s", r.code, r.stderr)
	}
	tgz := filepath.Join(out, chartName+"-"+version+".tgz")
	if _, err := os.Stat(tgz); err != nil {
		w.t.Fatalf("helm package wrote no %s", tgz)
	}
	return tgz
}

// helmOnly makes helm's own registry config the only way helm can reach the helper: helm's
// file absent, Docker's config (which helm falls back to) without an entry, and no other
// credential helper on PATH (helm, like Docker, would pick the platform's native store, whose
// failure on a missing D-Bus says nothing about credentials).
func (w *world) helmOnly(helm string) {
	w.t.Helper()
	w.env["HELM_REGISTRY_CONFIG"] = filepath.Join(w.home, ".config", "helm", "registry", "config.json")
	w.write(filepath.Join(w.env["DOCKER_CONFIG"], "config.json"), `{}`)
	w.env["PATH"] = filepath.Dir(helperBin) + string(os.PathListSeparator) + filepath.Dir(helm)
	if _, err := os.Stat(w.env["HELM_REGISTRY_CONFIG"]); err == nil {
		w.t.Fatal("helm's registry config exists before the test wrote it")
	}
}

// helmRefused runs helm and asserts the registry refused it for want of credentials, not
// that something else broke on the way.
func (w *world) helmRefused(what, helm string, args ...string) {
	w.t.Helper()
	r := w.run("", helm, args...)
	msg := strings.ToLower(r.stderr)
	if r.code == 0 {
		w.t.Fatalf("helm %s: worked, want it refused", what)
	}
	if !strings.Contains(msg, "401") && !strings.Contains(msg, "unauthorized") && !strings.Contains(msg, "authentication required") {
		w.t.Fatalf("helm %s failed, but not for want of credentials: %s", what, r.stderr)
	}
	if strings.Contains(msg, "d-bus") || strings.Contains(msg, "docker-credential-") {
		w.t.Fatalf("helm %s failed in a credential helper, not at the registry: %s", what, r.stderr)
	}
}

// unwired empties every client config of the world, as on a machine before `configure`.
func (w *world) unwired() {
	w.write(filepath.Join(w.env["DOCKER_CONFIG"], "config.json"), `{}`)
	w.write(w.env["REGISTRY_AUTH_FILE"], `{}`)
}

func (w *world) configure(args ...string) {
	w.t.Helper()
	if r := w.helper("", append([]string{"configure"}, args...)...); r.code != 0 {
		w.t.Fatalf("configure %v: exit %d: %s", args, r.code, r.stderr)
	}
}

// docker login through the helper (both with a pull token and, logged in, with what the
// helper already has), docker logout erasing it, and a docker pull when an Engine answers.
func TestConfigureDockerCLI(t *testing.T) {
	need(t, "docker")
	w := newWorld(t, emulator.Options{})
	w.unwired()
	w.configure("--docker")
	host := w.emu.RegistryHost()
	var cfg struct {
		CredHelpers map[string]string `json:"credHelpers"`
	}
	b, _ := os.ReadFile(filepath.Join(w.env["DOCKER_CONFIG"], "config.json"))
	if json.Unmarshal(b, &cfg) != nil || cfg.CredHelpers[host] != "cgr" {
		t.Fatalf("configure --docker did not route %s to the helper:\n%s", host, b)
	}

	w.login()
	id, tok := w.pullToken()
	w.helper("", "logout")
	r := w.run(tok, "docker", "login", host, "-u", id, "--password-stdin")
	if r.code != 0 {
		t.Fatalf("docker login: exit %d: %s", r.code, r.stderr)
	}
	noSecretIn(t, "docker login output", r.stdout+r.stderr, tok)
	b, _ = os.ReadFile(filepath.Join(w.env["DOCKER_CONFIG"], "config.json"))
	noSecretIn(t, "Docker's config.json", string(b), tok)
	if user, secret, r := w.get(host); r.code != 0 || user != id || secret != tok {
		t.Fatalf("get after docker login: exit %d, user %q", r.code, user)
	}
	if r := w.run("", "docker", "logout", host); r.code != 0 {
		t.Fatalf("docker logout: exit %d: %s", r.code, r.stderr)
	}
	if _, _, r := w.get(host); r.code != 1 || !strings.Contains(r.stdout, "credentials not found") {
		t.Fatalf("get after docker logout: exit %d %q; want not found", r.code, r.stdout)
	}

	// Logged in, `docker login <host>` with no user name uses what the helper gives and
	// re-stores it, which must not turn the short-lived token into a static credential.
	w.login()
	r = w.run("", "docker", "login", host)
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "Login Succeeded") {
		t.Fatalf("docker login %s with the session: exit %d: %s %s", host, r.code, r.stdout, r.stderr)
	}
	if r := w.helper("", "status", "--json"); !strings.Contains(r.stdout, `"pull_tokens": []`) {
		t.Fatalf("docker login re-store became a stored credential:\n%s", r.stdout)
	}

	dockerEngine(t)
	img := w.emu.PrivateImage()
	t.Cleanup(func() { w.run("", "docker", "rmi", "-f", img) })
	if r := w.run("", "docker", "pull", img); r.code != 0 {
		t.Fatalf("docker pull %s: exit %d: %s", img, r.code, r.stderr)
	}
}

// go-containerregistry (crane, ko) reads Docker's config that configure wrote.
func TestConfigureGoContainerRegistry(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.unwired()
	w.login()
	w.mustNotPull(w.emu.PrivateImage())
	w.configure()
	w.mustPull(w.emu.PrivateImage())
	w.mustPull(w.emu.PublicImage())
}

// skopeo (containers/image) reads the auth.json that configure wrote.
func TestConfigureSkopeo(t *testing.T) {
	need(t, "skopeo")
	w := newWorld(t, emulator.Options{})
	w.unwired()
	w.login()
	inspect := func() result {
		return w.run("", "skopeo", "inspect", "--tls-verify=false", "docker://"+w.emu.PrivateImage())
	}
	if r := inspect(); r.code == 0 {
		t.Fatal("skopeo inspect of the private image worked before configure")
	}
	w.configure("--containers")
	if r := inspect(); r.code != 0 || !strings.Contains(r.stdout, `"Digest"`) {
		t.Fatalf("skopeo inspect after configure --containers: exit %d: %s", r.code, r.stderr)
	}
}

// helm push and pull of an OCI chart, authenticating through the helper (helm POSTs /token
// with grant_type=password). Only helm's own registry config can make it work here (see
// helmOnly): refused before `configure --helm`, working after, refused again logged out.
func TestConfigureHelm(t *testing.T) {
	helm := helmBin(t)
	w := newWorld(t, emulator.Options{})
	w.helmOnly(helm)
	w.login()
	chart := w.helmChart("hello", "0.3.1")
	ref := "oci://" + w.emu.RegistryHost() + "/" + w.emu.Org().Name + "/charts"
	w.helmRefused("push before configure", helm, "push", chart, ref, "--plain-http")

	w.configure("--helm")
	b, err := os.ReadFile(w.env["HELM_REGISTRY_CONFIG"])
	if err != nil || !strings.Contains(string(b), w.emu.RegistryHost()) {
		t.Fatalf("configure --helm did not write %s: %v", w.env["HELM_REGISTRY_CONFIG"], err)
	}
	if b, _ := os.ReadFile(filepath.Join(w.env["DOCKER_CONFIG"], "config.json")); string(b) != "{}" {
		t.Fatalf("configure --helm changed Docker's config: %s", b)
	}
	r := w.run("", helm, "push", chart, ref, "--plain-http")
	if r.code != 0 {
		t.Fatalf("helm push: exit %d: %s", r.code, r.stderr)
	}
	dest := t.TempDir()
	r = w.run("", helm, "pull", ref+"/hello", "--version", "0.3.1", "--plain-http", "-d", dest)
	if r.code != 0 {
		t.Fatalf("helm pull: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dest, "hello-0.3.1.tgz")); err != nil {
		t.Fatalf("helm pull wrote no chart: %v", err)
	}
	_, secret, _ := w.get(w.emu.RegistryHost())
	b, _ = os.ReadFile(w.env["HELM_REGISTRY_CONFIG"])
	noSecretIn(t, "helm's registry config", string(b), secret)

	// Logged out, helm gets nothing and the push is refused.
	w.helper("", "logout")
	w.helmRefused("push logged out", helm, "push", chart, ref, "--plain-http")
}

// `sudo docker-credential-cgr configure`: a finding in root's file comes with a fix that says
// sudo (the person at the keyboard is not root), the user's own fixes do not; and the dry run
// says what it would change, with no failure its own changes would fix.
func TestConfigureUnderSudoFixesSaySudo(t *testing.T) {
	sw := newSudoWorld(t)
	host := sw.emu.RegistryHost()
	stale := base64.StdEncoding.EncodeToString([]byte("someone:an-old-password"))
	rootCfg := filepath.Join(sw.rootEnv["DOCKER_CONFIG"], "config.json")
	if err := os.MkdirAll(filepath.Dir(rootCfg), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootCfg, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, stale)), 0o600); err != nil {
		t.Fatal(err)
	}
	rootFix := "fix: sudo docker-credential-cgr configure --docker --fix-shadowing"

	r := sw.asSudo("", sw.helperPath(), "configure", "--docker", "--dry-run")
	if r.code != 0 || strings.Contains(r.stdout, "fail:") || strings.Contains(r.stdout, "no credHelpers entry") ||
		!strings.Contains(r.stdout, sw.u.Username+": ") || !strings.Contains(r.stdout, "would be created") ||
		!strings.Contains(r.stdout, "root: would remain: auths[\""+host+"\"] still holds a static secret") || !strings.Contains(r.stdout, rootFix) {
		t.Fatalf("sudo configure --dry-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(rootCfg); strings.Contains(string(b), "credHelpers") {
		t.Fatal("the dry run wrote root's config")
	}

	r = sw.asSudo("", sw.helperPath(), "configure", "--docker")
	if r.code != 0 {
		t.Fatalf("sudo configure: exit %d: %s", r.code, r.stderr)
	}
	var fix string
	for _, l := range strings.Split(r.stdout, "\n") {
		_, f, ok := strings.Cut(l, "; fix: ")
		switch {
		case ok && strings.HasPrefix(l, "root: "):
			fix = f
		case ok && strings.HasPrefix(l, sw.u.Username+": "):
			t.Errorf("a finding for the user's own file, which configure just wired: %s", l)
		}
	}
	if "fix: "+fix != rootFix {
		t.Fatalf("root's static secret: fix %q, want %q\n%s", fix, rootFix, r.stdout)
	}
	// The fix as printed, sudo being what asSudo already does: root's secret is gone.
	args := strings.Fields(fix)
	if r := sw.asSudo("", sw.helperPath(), args[2:]...); r.code != 0 {
		t.Fatalf("%s: exit %d: %s", fix, r.code, r.stderr)
	}
	b, _ := os.ReadFile(rootCfg)
	var cfg struct {
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if strings.Contains(string(b), stale) || json.Unmarshal(b, &cfg) != nil || cfg.CredHelpers[host] != "cgr" {
		t.Fatalf("root's config after the fix: static secret still there %v, credHelpers %v", strings.Contains(string(b), stale), cfg.CredHelpers)
	}
}
