package e2e

// docker compose v2 (the CLI plugin) and docker-compose v1 (Python, Debian's package) pulling
// several services at once from the private org through the helper, each with its own
// project name, and refused without it.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// composeWorld is a logged-in world with three private images and a compose file naming
// them as three services.
func composeWorld(t *testing.T) (w *world, execs *execLog, file string, images []string) {
	t.Helper()
	need(t, "docker")
	dockerEngine(t)
	w = newWorld(t, emulator.Options{})
	w.login()
	images = w.privateImages(3)
	w.rmiLater(images...)
	var sb strings.Builder
	sb.WriteString("services:\n")
	for i, img := range images {
		fmt.Fprintf(&sb, "  svc%d:\n    image: %s\n", i+1, img)
	}
	file = filepath.Join(t.TempDir(), "compose.yaml")
	w.write(file, sb.String())
	w.env["COMPOSE_PROJECT_NAME"] = "cgr-e2e-" + uniq()
	return w, w.countExecs(), file, images
}

// The pulled images are in the Engine now.
func (w *world) inEngine(images []string) {
	w.t.Helper()
	for _, img := range images {
		if r := w.run("", "docker", "image", "inspect", "--format", "{{.Id}}", img); r.code != 0 {
			w.t.Fatalf("%s is not in the Engine after the pull: %s", img, r.stderr)
		}
	}
}

func TestClientsComposeV2Pull(t *testing.T) {
	w, execs, file, images := composeWorld(t)
	w.plugins("compose")
	refusedForCredentials(t, "docker compose pull", runCommand(t, append(w.environ(), "DOCKER_CONFIG="+w.unwiredDocker()), "", "", "docker", "compose", "-f", file, "pull"))
	execs.reset()
	r := w.run("", "docker", "compose", "-f", file, "pull")
	if r.code != 0 {
		t.Fatalf("docker compose pull: exit %d:\n%s", r.code, lastLines(r.stderr, 20))
	}
	n := execs.gets()
	w.inEngine(images)
	v := w.run("", "docker", "compose", "version", "--short")
	recordRow(t, clientRow{Client: "docker compose v2", Version: "v" + strings.TrimPrefix(strings.TrimSpace(v.stdout), "v"),
		Command: "docker compose pull", Note: "3 services, 3 private images", Result: "pulls all 3; refused (401) unwired", Execs: fmt.Sprint(n)})
}

func TestClientsComposeV1Pull(t *testing.T) {
	bin := need(t, "docker-compose")
	w, execs, file, images := composeWorld(t)
	refusedForCredentials(t, "docker-compose pull", runCommand(t, append(w.environ(), "DOCKER_CONFIG="+w.unwiredDocker()), "", "", bin, "-f", file, "pull"))
	execs.reset()
	r := w.run("", bin, "-f", file, "pull")
	if r.code != 0 {
		t.Fatalf("docker-compose pull: exit %d:\n%s", r.code, lastLines(r.stderr, 20))
	}
	n := execs.gets()
	w.inEngine(images)
	if n < len(images) {
		t.Logf("docker-compose v1 ran the helper %d times for %d services", n, len(images))
	}
	v := w.run("", bin, "version", "--short")
	recordRow(t, clientRow{Client: "docker-compose v1", Version: strings.TrimSpace(v.stdout) + " (Debian)",
		Command: "docker-compose pull", Note: "3 services, 3 private images", Result: "pulls all 3; refused (401) unwired", Execs: fmt.Sprint(n)})
}
