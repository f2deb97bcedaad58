package e2e

// What the client tests share: the tools scripts/deps.sh builds into .cache, the docker CLI
// plugins linked into a world's own $DOCKER_CONFIG, a count of the helper's executions, and
// images of the private org to pull several of at once.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
)

// cached is a tool scripts/deps.sh installs under .cache (rel: "bin/oras",
// "cli-plugins/docker-buildx"), or a missing tool by e2etest's policy.
func cached(t *testing.T, rel string) string {
	t.Helper()
	p := repoPath(".cache", rel)
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		e2etest.Missing(t, "%s is not installed (%s)", filepath.Base(rel), p)
	}
	return p
}

// plugins links docker CLI plugins (buildx, compose) into this world's $DOCKER_CONFIG/cli-plugins,
// the first place the docker CLI looks: each world has its own, and nothing of the machine's.
func (w *world) plugins(names ...string) {
	w.t.Helper()
	dir := filepath.Join(w.env["DOCKER_CONFIG"], "cli-plugins")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		w.t.Fatal(err)
	}
	for _, n := range names {
		bin := cached(w.t, filepath.Join("cli-plugins", "docker-"+n))
		if err := os.Symlink(bin, filepath.Join(dir, "docker-"+n)); err != nil && !os.IsExist(err) {
			w.t.Fatal(err)
		}
	}
}

// execLog counts the helper's executions: a docker-credential-cgr first on the world's PATH
// appends its action to a log and execs the real one. Only the action is written, never what
// goes through stdin or stdout.
type execLog struct {
	t    *testing.T
	path string
}

func (w *world) countExecs() *execLog {
	w.t.Helper()
	dir := w.t.TempDir()
	l := &execLog{t: w.t, path: filepath.Join(dir, "execs.log")}
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$1\" >> %q\nexec %q \"$@\"\n", l.path, helperBin)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-cgr"), []byte(script), 0o755); err != nil {
		w.t.Fatal(err)
	}
	w.env["PATH"] = dir + string(os.PathListSeparator) + w.env["PATH"]
	return l
}

// gets is how many times the helper was run with `get` since the last reset.
func (l *execLog) gets() int {
	b, err := os.ReadFile(l.path)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if line == "get" {
			n++
		}
	}
	return n
}

func (l *execLog) reset() {
	if err := os.Remove(l.path); err != nil && !os.IsNotExist(err) {
		l.t.Fatal(err)
	}
}

// unwiredDocker is a Docker config dir that names no helper (unwiredConfig), with this
// world's plugins: a client run with it must be refused the private image.
func (w *world) unwiredDocker() string {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), "docker-unwired")
	w.write(filepath.Join(dir, "config.json"), unwiredConfig)
	if plugins, err := os.ReadDir(filepath.Join(w.env["DOCKER_CONFIG"], "cli-plugins")); err == nil {
		os.MkdirAll(filepath.Join(dir, "cli-plugins"), 0o700)
		for _, p := range plugins {
			target, _ := os.Readlink(filepath.Join(w.env["DOCKER_CONFIG"], "cli-plugins", p.Name()))
			os.Symlink(target, filepath.Join(dir, "cli-plugins", p.Name()))
		}
	}
	return dir
}

// privateImages copies the private image to n more repositories of the org (through the
// helper, as crane would), so that a client pulls several distinct images at once.
func (w *world) privateImages(n int) []string {
	w.t.Helper()
	w.setenv()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src, err := name.ParseReference(w.emu.PrivateImage(), name.Insecure)
	if err != nil {
		w.t.Fatal(err)
	}
	img, err := remote.Image(src, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx))
	if err != nil {
		w.t.Fatalf("pull %s: %v", src, err)
	}
	var out []string
	for i := 1; i <= n; i++ {
		ref := fmt.Sprintf("%s/%s/svc%d:latest", w.emu.RegistryHost(), w.emu.Org().Name, i)
		dst, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(dst, img, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)); err != nil {
			w.t.Fatalf("push %s: %v", ref, err)
		}
		out = append(out, ref)
	}
	return out
}

// rmiLater removes images from the Engine at the end of the test (the Engine is the
// machine's; the references are unique to this emulator's port).
func (w *world) rmiLater(refs ...string) {
	w.t.Cleanup(func() {
		args := append([]string{"rmi", "-f"}, refs...)
		exec.Command("docker", args...).Run()
	})
}

// uniq is a short random name part (compose projects, tags).
func uniq() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// refusedForCredentials asserts r failed because the registry wanted credentials.
func refusedForCredentials(t *testing.T, what string, r result) {
	t.Helper()
	msg := strings.ToLower(r.stdout + r.stderr)
	if r.code == 0 {
		t.Fatalf("%s without the helper: worked, want it refused", what)
	}
	for _, s := range []string{"401", "unauthorized", "authentication required", "denied"} {
		if strings.Contains(msg, s) {
			return
		}
	}
	t.Fatalf("%s without the helper failed, but not for want of credentials: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
}

// lastLines is the tail of a command's output, for a failure message.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
