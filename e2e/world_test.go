// Package e2e holds the binary-level tests: the built binary, driven as a process by real
// clients (the docker CLI and Engine, go-containerregistry, crane, skopeo, podman, buildah,
// helm, kubectl, sudo) against the project's emulator of cgr.dev, its issuer and its API.
//
// Files are named by what they test (protocol, login, pulltoken, doctor, configure, sudo,
// faults, clients, kube, ...) and their tests Test<Area><Case>. The binaries are built once per
// run (internal/e2etest.Build); a missing tool fails under CI and `make test`, and is a skip
// with its reason elsewhere (e2etest.Need).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

var (
	helperBin   string // the built docker-credential-cgr
	emulatorBin string // cgr-emulator, whose `browse` is the fake browser
	repoRoot    string // the module's root (tests run in e2e/)
)

// repoPath is a path inside the repository: scripts/..., .cache/bin/...
func repoPath(parts ...string) string { return filepath.Join(append([]string{repoRoot}, parts...)...) }

func TestMain(m *testing.M) {
	b, err := e2etest.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperBin, emulatorBin = b.Helper, b.Emulator
	if repoRoot, err = e2etest.ModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := finishTable(m.Run())
	e2etest.Cleanup()
	os.Exit(code)
}

// world is one emulator and one isolated user: HOME, configs and a file store of its own.
type world struct {
	t    *testing.T
	emu  *emulator.Emulator
	home string
	env  map[string]string
}

func newWorld(t *testing.T, opts emulator.Options) *world {
	t.Helper()
	emu, err := emulator.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	home := e2etest.TempHome(t)
	w := &world{t: t, emu: emu, home: home, env: map[string]string{}}
	for _, kv := range emu.Env() {
		k, v, _ := strings.Cut(kv, "=")
		w.env[k] = v
	}
	docker := filepath.Join(home, ".docker")
	w.env["HOME"] = home
	w.env["PATH"] = filepath.Dir(helperBin) + ":" + os.Getenv("PATH")
	w.env["DOCKER_CONFIG"] = docker
	w.env["REGISTRY_AUTH_FILE"] = filepath.Join(home, "auth.json")
	w.env["XDG_CONFIG_HOME"] = filepath.Join(home, ".config")
	w.env["XDG_DATA_HOME"] = filepath.Join(home, ".local", "share")
	w.env["XDG_RUNTIME_DIR"] = filepath.Join(home, "run")
	w.env["CGR_STORE"] = "file"
	w.env["BROWSER"] = emulatorBin + " browse"
	w.env["CGR_AUTO_LOGIN"] = "false"
	// Wire the clients by hand here; `configure` has tests of its own.
	wired := fmt.Sprintf(`{"credHelpers":{%q:"cgr"}}`, emu.RegistryHost())
	w.write(filepath.Join(docker, "config.json"), wired)
	w.write(w.env["REGISTRY_AUTH_FILE"], wired)
	return w
}

func (w *world) write(path, content string) {
	w.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// environ is the process environment of a client run in this world: the machine's, minus
// anything that would point at the developer's own store or keychain, plus the world's.
func (w *world) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CGR_") || strings.HasPrefix(k, "XDG_") || k == "DBUS_SESSION_BUS_ADDRESS" || k == "SUDO_UID" || ciVariable(k) {
			continue
		}
		if _, ok := w.env[k]; !ok {
			env = append(env, kv)
		}
	}
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	return env
}

// ciVariable: a variable by which a CI makes itself known (and hands out its OIDC token); the
// machine's own never reach a test's helper, so a test behaves the same on a laptop and in CI.
func ciVariable(k string) bool {
	switch k {
	case "CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "CIRCLE_OIDC_TOKEN", "CIRCLE_OIDC_TOKEN_V2":
		return true
	}
	return strings.HasPrefix(k, "ACTIONS_ID_TOKEN_") || strings.HasPrefix(k, "BUILDKITE_")
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs a command in this world with a deadline, so nothing a test starts can hang it.
func (w *world) run(stdin string, name string, args ...string) result {
	w.t.Helper()
	return runCommand(w.t, w.environ(), "", stdin, name, args...)
}

// runCommand runs a command with env, in dir ("" = here), bounded by a deadline; a command
// that cannot start fails the test, an exit status is a result.
func runCommand(t *testing.T, env []string, dir, stdin, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return result{out.String(), errb.String(), code}
}

// helper runs docker-credential-cgr.
func (w *world) helper(stdin string, args ...string) result {
	w.t.Helper()
	return w.run(stdin, helperBin, args...)
}

// login logs in through the fake browser and fails the test unless it worked.
func (w *world) login() {
	w.t.Helper()
	if r := w.helper("", "login"); r.code != 0 {
		w.t.Fatalf("login: exit %d\nstderr: %s", r.code, r.stderr)
	}
}

// pullToken creates a pull token through the binary and returns its identity and token.
func (w *world) pullToken(args ...string) (id, tok string) {
	w.t.Helper()
	r := w.helper("", append([]string{"pull-token", "create", "--json"}, args...)...)
	if r.code != 0 {
		w.t.Fatalf("pull-token create: exit %d\nstderr: %s", r.code, r.stderr)
	}
	var out struct {
		ID    string `json:"identity_id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.ID == "" || out.Token == "" {
		w.t.Fatalf("pull-token create --json: not the documented JSON (%v)", err)
	}
	return out.ID, out.Token
}

// get runs the protocol's get and decodes its answer.
func (w *world) get(serverURL string) (user, secret string, r result) {
	w.t.Helper()
	r = w.helper(serverURL, "get")
	if r.code != 0 {
		return "", "", r
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		w.t.Fatalf("get: stdout is not the protocol JSON: %v", err)
	}
	if c.ServerURL != serverURL {
		w.t.Fatalf("get: ServerURL %q, want %q", c.ServerURL, serverURL)
	}
	return c.Username, c.Secret, r
}

// noSecretIn fails when a secret appears in text a user or a log could see.
func noSecretIn(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Fatalf("a secret appears in %s", what)
		}
	}
}

func dockerEngine(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, "docker", "info").Run(); err != nil {
		e2etest.Missing(t, "no Docker Engine: docker info failed")
	}
}
