package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// setenv puts this world's environment into the test process, for in-process clients
// (go-containerregistry) that exec the helper with their own environment.
func (w *world) setenv() {
	for _, kv := range w.environ() {
		k, v, _ := strings.Cut(kv, "=")
		w.t.Setenv(k, v)
	}
	for _, k := range []string{"CGR_IDENTITY", "CGR_IDENTITY_TOKEN", "DBUS_SESSION_BUS_ADDRESS", "SUDO_UID", "CI"} {
		if _, ok := w.env[k]; !ok {
			w.t.Setenv(k, "")
		}
	}
}

func need(t *testing.T, cmd string) string {
	t.Helper()
	return e2etest.Need(t, cmd)
}

// docker login with a pull token stores it through the helper; docker logout erases it.
func TestClientsDockerLoginLogout(t *testing.T) {
	need(t, "docker")
	w := newWorld(t, emulator.Options{})
	w.login()
	host := w.emu.RegistryHost()
	id, tok := w.pullToken()
	w.helper("", "logout") // the pull token alone must be enough
	r := w.run(tok, "docker", "login", host, "-u", id, "--password-stdin")
	if r.code != 0 {
		t.Fatalf("docker login: exit %d: %s", r.code, r.stderr)
	}
	noSecretIn(t, "docker login output", r.stdout+r.stderr, tok)
	if user, secret, r := w.get(host); r.code != 0 || user != id || secret != tok {
		t.Fatalf("get after docker login: exit %d, user %q", r.code, user)
	}
	if r := w.run("", "docker", "logout", host); r.code != 0 {
		t.Fatalf("docker logout: exit %d: %s", r.code, r.stderr)
	}
	if _, _, r := w.get(host); r.code != 1 || !strings.Contains(r.stdout, "credentials not found") {
		t.Fatalf("get after docker logout: exit %d %q; want not found", r.code, r.stdout)
	}
}

// go-containerregistry's DefaultKeychain execs the helper (as crane and ko do).
func TestClientsGoContainerRegistryPull(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	w.setenv()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, img := range []string{w.emu.PrivateImage(), w.emu.PublicImage()} {
		ref, err := name.ParseReference(img, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Image(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)); err != nil {
			t.Fatalf("pull %s: %v", img, err)
		}
	}
	// Logged out, the public image still pulls anonymously; the private one does not.
	w.helper("", "logout")
	pub, _ := name.ParseReference(w.emu.PublicImage(), name.Insecure)
	if _, err := remote.Image(pub, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)); err != nil {
		t.Fatalf("anonymous pull of the public image: %v", err)
	}
	priv, _ := name.ParseReference(w.emu.PrivateImage(), name.Insecure)
	if _, err := remote.Image(priv, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)); err == nil {
		t.Fatal("the private image pulled with no credentials")
	}
}

// skopeo (containers/image) reads credHelpers from auth.json.
func TestClientsSkopeoInspect(t *testing.T) {
	need(t, "skopeo")
	w := newWorld(t, emulator.Options{})
	w.login()
	execs := w.countExecs()
	empty := filepath.Join(w.home, "empty-auth.json")
	w.write(empty, "{}")
	inspect := func(authfile string, env ...string) result {
		return runCommand(t, append(w.environ(), env...), "", "", "skopeo", "inspect", "--tls-verify=false", "--authfile", authfile, "docker://"+w.emu.PrivateImage())
	}
	refusedForCredentials(t, "skopeo inspect", inspect(empty, "DOCKER_CONFIG="+t.TempDir()))
	execs.reset()
	r := inspect(w.env["REGISTRY_AUTH_FILE"])
	if r.code != 0 || !strings.Contains(r.stdout, `"Digest"`) {
		t.Fatalf("skopeo inspect: exit %d: %s", r.code, r.stderr)
	}
	v := w.run("", "skopeo", "--version")
	recordRow(t, clientRow{Client: "skopeo", Version: versionWord(v.stdout) + " (Debian)", Command: "skopeo inspect docker://<org>/app",
		Note: "credHelpers in auth.json", Result: "inspects it; refused (401) unwired", Execs: fmt.Sprint(execs.gets())})
}

// versionWord is the word after "version" in a tool's version line ("buildah version 1.28.2
// (image-spec 1.0.2-dev, ...)").
func versionWord(s string) string {
	f := strings.Fields(s)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "version" {
			return f[i+1]
		}
	}
	return "unknown"
}

// podman and buildah (containers/image, like skopeo, but with their own storage) pull the
// private image through credHelpers in auth.json; with an empty auth file the same pull is
// refused, so it is the helper that let them in.
func TestClientsPodmanAndBuildahPull(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	img := w.emu.PrivateImage()
	empty := filepath.Join(w.home, "empty-auth.json")
	w.write(empty, "{}")
	execs := w.countExecs()
	for _, tool := range []string{"podman", "buildah"} {
		t.Run(tool, func(t *testing.T) {
			bin := need(t, tool)
			dir, err := os.MkdirTemp("", "cgr-"+tool) // podman refuses a runroot over 50 bytes
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			pull := func(authfile string, env ...string) result {
				return runCommand(t, append(w.environ(), env...), "", "", bin, "--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"),
					"--storage-driver", "vfs", "pull", "--tls-verify=false", "--authfile", authfile, img)
			}
			// Neither auth.json nor Docker's config.json (their fallback) names the helper.
			r := pull(empty, "DOCKER_CONFIG="+t.TempDir())
			if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "unauthorized") {
				t.Fatalf("%s without credentials: exit %d; want refused as unauthorized: %s", tool, r.code, r.stderr)
			}
			execs.reset()
			r = pull(w.env["REGISTRY_AUTH_FILE"])
			if r.code != 0 {
				t.Fatalf("%s pull %s: exit %d: %s", tool, img, r.code, r.stderr)
			}
			n := execs.gets()
			noJWTIn(t, tool+" output", r.stdout+r.stderr)
			v := runCommand(t, w.environ(), "", "", bin, "--version")
			recordRow(t, clientRow{Client: tool, Version: versionWord(v.stdout) + " (Debian)", Command: tool + " pull <org>/app",
				Note: "credHelpers in auth.json", Result: "pulls it; refused (401) unwired", Execs: fmt.Sprint(n)})
		})
	}
}

// A real Docker Engine pull: the CLI asks the helper and hands the credential to the daemon.
func TestClientsDockerPull(t *testing.T) {
	need(t, "docker")
	dockerEngine(t)
	w := newWorld(t, emulator.Options{})
	w.login()
	execs := w.countExecs()
	img := w.emu.PrivateImage()
	w.rmiLater(img)
	refusedForCredentials(t, "docker pull", runCommand(t, append(w.environ(), "DOCKER_CONFIG="+w.unwiredDocker()), "", "", "docker", "pull", img))
	execs.reset()
	r := w.run("", "docker", "pull", img)
	if r.code != 0 {
		t.Fatalf("docker pull %s: exit %d: %s", img, r.code, r.stderr)
	}
	v := w.run("", "docker", "version", "--format", "{{.Client.Version}}")
	recordRow(t, clientRow{Client: "docker pull (Engine)", Version: strings.TrimSpace(v.stdout) + ", Engine " + engineVersion(t), Command: "docker pull <org>/app",
		Result: "pulls it; refused (401) unwired", Execs: fmt.Sprint(execs.gets())})
}
