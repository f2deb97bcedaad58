package e2e

// OCI clients that read Docker's config.json and exec the helper themselves: oras (oras-go),
// regctl (regclient), ko and cosign (go-containerregistry), and helm v4 (oras-go, its own
// registry config first). Each is refused the private image with a config that names no
// helper, then works once the world is wired as `configure` wires it.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// unwiredConfig is what a client reads before `configure`: a login for another registry only.
// Not `{}`: a config with no login at all makes docker/cli (buildx, compose), oras-go and helm
// pick the platform's keychain helper when it is installed (docker-credential-secretservice
// here), whose failure on a missing D-Bus would say nothing about credentials.
const unwiredConfig = `{"auths":{"registry.invalid":{}}}`

// ociWorld is a logged-in world wired by `configure` (Docker, containers and helm), with a
// Docker config dir of the same world that names no helper, and a count of helper execs.
func ociWorld(t *testing.T) (w *world, execs *execLog, unwired string) {
	t.Helper()
	w = newWorld(t, emulator.Options{})
	w.env["HELM_REGISTRY_CONFIG"] = filepath.Join(w.home, ".config", "helm", "registry", "config.json")
	w.write(filepath.Join(w.env["DOCKER_CONFIG"], "config.json"), unwiredConfig)
	w.configure()
	w.login()
	unwired = filepath.Join(t.TempDir(), "docker-unwired")
	w.write(filepath.Join(unwired, "config.json"), unwiredConfig)
	return w, w.countExecs(), unwired
}

// builtVersion is the module version a Go tool was built from (go version -m), for tools
// whose own version command prints less (helm v4 built by go install says "v4.3").
func builtVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
			return f[2]
		}
	}
	t.Fatalf("go version -m %s: no module version", bin)
	return ""
}

// version runs a tool's version command and returns the first field that looks like one.
func (w *world) version(bin string, args ...string) string {
	w.t.Helper()
	r := w.run("", bin, args...)
	for _, f := range strings.FieldsFunc(r.stdout+r.stderr, func(r rune) bool { return r == ' ' || r == '\n' || r == '"' || r == ',' || r == ':' }) {
		if len(f) > 1 && (f[0] == 'v' || f[0] >= '0' && f[0] <= '9') && strings.Count(f, ".") >= 2 {
			return "v" + strings.TrimPrefix(f, "v")
		}
	}
	w.t.Fatalf("%s %v printed no version: %s %s", bin, args, r.stdout, r.stderr)
	return ""
}

func TestClientsOras(t *testing.T) {
	oras := cached(t, "bin/oras")
	w, execs, unwired := ociWorld(t)
	ref := fmt.Sprintf("%s/%s/artifact:%s", w.emu.RegistryHost(), w.emu.Org().Name, uniq())
	src := t.TempDir()
	w.write(filepath.Join(src, "hello.txt"), "hello from oras\n")

	refusedForCredentials(t, "oras pull", runCommand(t, append(w.environ(), "DOCKER_CONFIG="+unwired), "", "", oras, "pull", "--plain-http", w.emu.PrivateImage()))
	if r := runCommand(t, w.environ(), src, "", oras, "push", "--plain-http", ref, "hello.txt"); r.code != 0 {
		t.Fatalf("oras push %s: exit %d: %s", ref, r.code, r.stderr)
	}
	out := t.TempDir()
	execs.reset()
	r := w.run("", oras, "pull", "--plain-http", "-o", out, ref)
	if r.code != 0 {
		t.Fatalf("oras pull %s: exit %d: %s", ref, r.code, r.stderr)
	}
	n := execs.gets()
	if b, err := os.ReadFile(filepath.Join(out, "hello.txt")); err != nil || string(b) != "hello from oras\n" {
		t.Fatalf("oras pull wrote no hello.txt (%v)", err)
	}
	if r := w.run("", oras, "manifest", "fetch", "--plain-http", w.emu.PrivateImage()); r.code != 0 {
		t.Fatalf("oras manifest fetch %s: exit %d: %s", w.emu.PrivateImage(), r.code, r.stderr)
	}
	recordRow(t, clientRow{Client: "oras", Version: w.version(oras, "version"), Command: "oras pull --plain-http <org>/artifact", Note: "pushed by oras push",
		Result: "pulls the file; refused (401) unwired", Execs: fmt.Sprint(n)})
}

func TestClientsRegctl(t *testing.T) {
	regctl := cached(t, "bin/regctl")
	w, execs, unwired := ociWorld(t)
	host := w.emu.RegistryHost()
	// regctl's own config (in this world's HOME): the emulator speaks plain http.
	if r := w.run("", regctl, "registry", "set", "--tls", "disabled", host); r.code != 0 {
		t.Fatalf("regctl registry set: exit %d: %s", r.code, r.stderr)
	}
	refusedForCredentials(t, "regctl image manifest", runCommand(t, append(w.environ(), "DOCKER_CONFIG="+unwired), "", "", regctl, "image", "manifest", w.emu.PrivateImage()))
	execs.reset()
	r := w.run("", regctl, "image", "manifest", "--format", "raw-body", w.emu.PrivateImage())
	if r.code != 0 || !strings.Contains(r.stdout, `"layers"`) {
		t.Fatalf("regctl image manifest: exit %d: %s", r.code, r.stderr)
	}
	n := execs.gets()
	recordRow(t, clientRow{Client: "regctl", Version: w.version(regctl, "version", "--format", "{{.VCSTag}}"), Command: "regctl image manifest --format raw-body <org>/app",
		Result: "reads it; refused (401) unwired", Execs: fmt.Sprint(n)})

	dst := fmt.Sprintf("%s/%s/copied:%s", host, w.emu.Org().Name, uniq())
	execs.reset()
	if r := w.run("", regctl, "image", "copy", w.emu.PrivateImage(), dst); r.code != 0 {
		t.Fatalf("regctl image copy: exit %d: %s", r.code, r.stderr)
	}
	n = execs.gets()
	if err := w.pull(dst); err != nil {
		t.Fatalf("the copy %s does not pull: %v", dst, err)
	}
	recordRow(t, clientRow{Client: "regctl", Version: w.version(regctl, "version", "--format", "{{.VCSTag}}"), Command: "regctl image copy <org>/app <org>/copied",
		Result: "copies within the org", Execs: fmt.Sprint(n)})
}

// ko builds a Go program onto the private image as its base (KO_DEFAULTBASEIMAGE) and
// pushes the result to the org: both through the keychain, no `ko login`.
func TestClientsKo(t *testing.T) {
	ko := cached(t, "bin/ko")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go is not on PATH")
	}
	w, execs, unwired := ociWorld(t)
	src := t.TempDir()
	w.write(filepath.Join(src, "go.mod"), "module example.com/hello\n\ngo 1.22\n")
	w.write(filepath.Join(src, "main.go"), "package main\n\nfunc main() { println(\"hello from ko\") }\n")
	env := w.environ()
	// The machine's Go build cache, so the program does not rebuild the runtime.
	for _, k := range []string{"GOCACHE", "GOMODCACHE"} {
		if out, err := exec.Command(goBin, "env", k).Output(); err == nil {
			env = append(env, k+"="+strings.TrimSpace(string(out)))
		}
	}
	env = append(env, "GOFLAGS=", "GOTOOLCHAIN=local", "KO_DEFAULTBASEIMAGE="+w.emu.PrivateImage(),
		"KO_DOCKER_REPO="+w.emu.RegistryHost()+"/"+w.emu.Org().Name+"/ko")
	build := func(env []string) result {
		return runCommand(t, env, src, "", ko, "build", "--insecure-registry", "--bare", "--platform", "linux/"+runtime.GOARCH, ".")
	}
	refusedForCredentials(t, "ko build", build(append(env, "DOCKER_CONFIG="+unwired)))
	execs.reset()
	r := build(env)
	if r.code != 0 {
		t.Fatalf("ko build: exit %d:\n%s", r.code, lastLines(r.stderr, 20))
	}
	n := execs.gets()
	built := strings.TrimSpace(r.stdout)
	if err := w.pull(built); err != nil {
		t.Fatalf("ko's image %q does not pull: %v", built, err)
	}
	recordRow(t, clientRow{Client: "ko", Version: w.version(ko, "version"), Command: "ko build --bare .", Note: "KO_DEFAULTBASEIMAGE = the private image",
		Result: "builds on it and pushes; refused (401) unwired", Execs: fmt.Sprint(n)})
}

// cosign tree resolves the private image's digest (an authenticated HEAD) and lists what
// refers to it (signatures, attestations, SBOMs): nothing yet.
func TestClientsCosign(t *testing.T) {
	cosign := cached(t, "bin/cosign")
	w, execs, unwired := ociWorld(t)
	img := w.emu.PrivateImage()
	refusedForCredentials(t, "cosign tree", runCommand(t, append(w.environ(), "DOCKER_CONFIG="+unwired), "", "", cosign, "tree", "--allow-http-registry", img))
	execs.reset()
	r := w.run("", cosign, "tree", "--allow-http-registry", img)
	if r.code != 0 || !strings.Contains(r.stdout, "No Supply Chain Security Related Artifacts found") {
		t.Fatalf("cosign tree: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	n := execs.gets()
	var v struct{ GitVersion string }
	vr := w.run("", cosign, "version", "--json")
	if json.Unmarshal([]byte(vr.stdout), &v) != nil || v.GitVersion == "" {
		t.Fatalf("cosign version --json: %s %s", vr.stdout, vr.stderr)
	}
	recordRow(t, clientRow{Client: "cosign", Version: v.GitVersion, Command: "cosign tree <org>/app", Result: "resolves it, lists its (no) referrers; refused (401) unwired", Execs: fmt.Sprint(n)})
}

// helm v4 pushes and pulls a chart in the org through helm's own registry config, which
// `configure` wires.
func TestClientsHelm4(t *testing.T) {
	helm := cached(t, "bin/helm4")
	w, execs, unwired := ociWorld(t)
	chart := w.helmChart("cgrchart", "0.1.0")
	ref := "oci://" + w.emu.RegistryHost() + "/" + w.emu.Org().Name + "/charts"
	// Unwired: helm's file and Docker's name no helper.
	unwiredHelm := filepath.Join(t.TempDir(), "registry.json")
	w.write(unwiredHelm, unwiredConfig)
	refusedForCredentials(t, "helm push", runCommand(t, append(w.environ(), "HELM_REGISTRY_CONFIG="+unwiredHelm, "DOCKER_CONFIG="+unwired), "", "", helm, "push", chart, ref, "--plain-http"))

	execs.reset()
	if r := w.run("", helm, "push", chart, ref, "--plain-http"); r.code != 0 {
		t.Fatalf("helm push: exit %d: %s", r.code, r.stderr)
	}
	pushes := execs.gets()
	dest := t.TempDir()
	execs.reset()
	if r := w.run("", helm, "pull", ref+"/cgrchart", "--version", "0.1.0", "--plain-http", "-d", dest); r.code != 0 {
		t.Fatalf("helm pull: exit %d: %s", r.code, r.stderr)
	}
	pulls := execs.gets()
	if _, err := os.Stat(filepath.Join(dest, "cgrchart-0.1.0.tgz")); err != nil {
		t.Fatalf("helm pull wrote no chart: %v", err)
	}
	v := builtVersion(t, helm)
	recordRow(t, clientRow{Client: "helm v4", Version: v, Command: "helm push chart.tgz oci://<org>/charts --plain-http", Note: "after configure",
		Result: "pushes; refused (401) unwired", Execs: fmt.Sprint(pushes)})
	recordRow(t, clientRow{Client: "helm v4", Version: v, Command: "helm pull oci://<org>/charts/cgrchart --plain-http", Note: "after configure",
		Result: "pulls through helm's own registry config", Execs: fmt.Sprint(pulls)})

	// helm's own file absent: helm falls back to Docker's config.json, which works only while
	// no platform keychain helper is on PATH (TestDoctorHelmNativeStoreFirst is the other case).
	execs.reset()
	path := strings.SplitN(w.env["PATH"], string(os.PathListSeparator), 2)[0] + string(os.PathListSeparator) + filepath.Dir(helperBin)
	r := runCommand(t, append(w.environ(), "HELM_REGISTRY_CONFIG="+filepath.Join(t.TempDir(), "absent.json"), "PATH="+path), "", "", helm,
		"pull", ref+"/cgrchart", "--version", "0.1.0", "--plain-http", "-d", t.TempDir())
	if r.code != 0 {
		t.Fatalf("helm pull through Docker's config.json alone: exit %d: %s", r.code, r.stderr)
	}
	recordRow(t, clientRow{Client: "helm v4", Version: v, Command: "helm pull oci://<org>/charts/cgrchart --plain-http", Note: "helm's own file absent, no keychain helper on PATH",
		Result: "pulls through Docker's config.json, its fallback", Execs: fmt.Sprint(execs.gets())})
}
