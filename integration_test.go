package main

// The suite's entry: one smoke test of the product as a user first meets it, through the
// built binary. The full binary-level suite (every client, sudo, faults, kube, doctor) lives in
// e2e/, built with the same helper (internal/e2etest); the unit tests live with each package.

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// TestSmokeLoginGetPull: against the emulator, with a home of its own, `login` through the fake
// browser, `get` answers the protocol JSON, and go-containerregistry (what crane, ko and cosign
// use) pulls the private image through credHelpers; refused before the login.
func TestSmokeLoginGetPull(t *testing.T) {
	b, err := e2etest.Build()
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	home := t.TempDir()
	env := map[string]string{
		"HOME": home, "DOCKER_CONFIG": filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME": filepath.Join(home, ".config"), "XDG_DATA_HOME": filepath.Join(home, ".local", "share"),
		"PATH": b.Dir + ":" + os.Getenv("PATH"), "CGR_STORE": "file", "CGR_AUTO_LOGIN": "false",
		"BROWSER": b.Emulator + " browse", "CGR_IDENTITY": "", "CGR_IDENTITY_TOKEN": "", "CI": "",
	}
	for _, kv := range emu.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	if err := os.MkdirAll(env["DOCKER_CONFIG"], 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := `{"credHelpers":{"` + emu.RegistryHost() + `":"cgr"}}`
	if err := os.WriteFile(filepath.Join(env["DOCKER_CONFIG"], "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, b.Helper, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			return out.String(), &exitError{err: err, stderr: errb.String()}
		}
		return out.String(), nil
	}
	ref, err := name.ParseReference(emu.PrivateImage(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pull := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := remote.Image(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx))
		return err
	}
	if err := pull(); err == nil {
		t.Fatal("the private image pulled before any login")
	}
	if _, err := run("", "login"); err != nil {
		t.Fatalf("login: %v", err)
	}
	out, err := run(emu.RegistryHost(), "get")
	if err != nil {
		t.Fatalf("get: %v (stdout %q)", err, out)
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ServerURL != emu.RegistryHost() || c.Username != "_token" || c.Secret == "" {
		t.Fatalf("get: not the protocol answer for a session (%v)", err)
	}
	if err := pull(); err != nil {
		t.Fatalf("pull after login: %v", err)
	}
}

// TestShippedBinaryLinksNoSDK: Chainguard's SDK and grpc judge the wire in tests and serve the
// emulator; the shipped binary links neither (every `get` would pay their init).
func TestShippedBinaryLinksNoSDK(t *testing.T) {
	b, err := e2etest.Build()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "version", "-m", b.Helper).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	deps := 0
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "dep" {
			continue
		}
		deps++
		for _, banned := range []string{"chainguard.dev/", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/grpc-ecosystem/"} {
			if strings.HasPrefix(f[1], banned) {
				t.Errorf("the shipped binary links %s %s", f[1], f[2])
			}
		}
	}
	if deps == 0 {
		t.Fatalf("go version -m listed no dependencies:\n%s", out)
	}
}

type exitError struct {
	err    error
	stderr string
}

func (e *exitError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
