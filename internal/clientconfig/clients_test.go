package clientconfig

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeHelperSrc is a docker-credential-cgr that records each call ("<action> <server>") in
// $FAKE_HELPER_LOG and answers get with a fixed test credential.
const fakeHelperSrc = `package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	action := ""
	if len(os.Args) > 1 {
		action = os.Args[1]
	}
	arg := strings.TrimSpace(string(in))
	if action == "store" {
		var c struct{ ServerURL string }
		json.Unmarshal(in, &c)
		arg = c.ServerURL
	}
	f, err := os.OpenFile(os.Getenv("FAKE_HELPER_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		fmt.Fprintf(f, "%s %s\n", action, arg)
		f.Close()
	}
	switch action {
	case "get":
		json.NewEncoder(os.Stdout).Encode(map[string]string{"ServerURL": arg, "Username": "helper-user", "Secret": "fake-secret"})
	case "list":
		fmt.Println("{}")
	}
}
`

// fakeHelper builds the fake helper into a directory to put first on PATH.
func fakeHelper(t *testing.T) (binDir, logFile string) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "main.go"), []byte(fakeHelperSrc), 0o600)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module fakehelper\n\ngo 1.22\n"), 0o600)
	binDir = t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, HelperBinary), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fake helper: %v\n%s", err, out)
	}
	return binDir, filepath.Join(t.TempDir(), "calls.log")
}

func calls(t *testing.T, logFile string) []string {
	b, err := os.ReadFile(logFile)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func run(t *testing.T, env []string, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cleanEnv is the process environment without the variables that pick config files.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "PATH", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "HELM_REGISTRY_CONFIG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// The real docker CLI, with only the config.json configure wrote, runs the helper for the
// served host: erase on logout, get on a login without -u (before it asks the daemon).
func TestRealDockerUsesHelper(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker CLI not installed")
	}
	bin, log := fakeHelper(t)
	home := t.TempDir()
	dc := filepath.Join(home, "dockercfg")
	// nothing listens on port 1: the daemon, if any, fails fast after the helper ran
	host := "127.0.0.1:1"
	a := Account{Name: "t", UID: -1, GID: -1, Home: home, GOOS: "linux",
		Getenv: func(k string) string { return map[string]string{"DOCKER_CONFIG": dc}[k] }}
	for _, c := range Configure(a, Options{Hosts: []string{host}, Clients: []Client{Docker}}) {
		if c.Action != Created {
			t.Fatal(c.Line())
		}
	}
	env := cleanEnv("HOME="+home, "DOCKER_CONFIG="+dc, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "FAKE_HELPER_LOG="+log)

	if out, err := run(t, env, "", docker, "logout", host); err != nil {
		t.Fatalf("docker logout: %v\n%s", err, out)
	}
	got := calls(t, log)
	if len(got) == 0 || got[0] != "erase "+host {
		t.Fatalf("docker logout: helper calls %q", got)
	}
	out, _ := run(t, env, "", docker, "login", host)
	got = calls(t, log)
	if !contains(got, "get "+host) {
		t.Fatalf("docker login did not ask the helper: calls %q\n%s", got, out)
	}
	if !strings.Contains(out, "helper-user") {
		t.Errorf("docker login did not use the helper's credential:\n%s", out)
	}
	// A host configure did not wire never reaches the helper.
	os.Remove(log)
	run(t, env, "", docker, "logout", "127.0.0.1:2")
	if got := calls(t, log); len(got) != 0 {
		t.Errorf("unwired host reached the helper: %q", got)
	}
}

// skopeo (containers/image) with the auth.json configure wrote runs the helper; and a
// static secret in the runtime file shadows it exactly as Inspect says, until
// --fix-shadowing removes it.
func TestRealSkopeoUsesHelper(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed")
	}
	bin, log := fakeHelper(t)
	host := "127.0.0.1:1"
	hosts := []string{host}
	path := "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")

	t.Run("REGISTRY_AUTH_FILE", func(t *testing.T) {
		home := t.TempDir()
		authFile := filepath.Join(home, "auth", "auth.json")
		a := Account{Name: "t", UID: -1, GID: -1, Home: home, GOOS: "linux",
			Getenv: func(k string) string { return map[string]string{"REGISTRY_AUTH_FILE": authFile}[k] }}
		Configure(a, Options{Hosts: hosts, Clients: []Client{Containers}})
		env := cleanEnv("HOME="+home, "REGISTRY_AUTH_FILE="+authFile, path, "FAKE_HELPER_LOG="+log)
		out, err := run(t, env, "", skopeo, "login", "--get-login", host)
		if err != nil || strings.TrimSpace(out) != "helper-user" {
			t.Fatalf("skopeo login --get-login: %v\n%s", err, out)
		}
		if got := calls(t, log); !contains(got, "get "+host) {
			t.Fatalf("helper calls %q", got)
		}
	})

	t.Run("default search order and shadowing", func(t *testing.T) {
		home := t.TempDir()
		runDir := filepath.Join(home, "run")
		os.MkdirAll(runDir, 0o700)
		a := Account{Name: "t", UID: -1, GID: -1, Home: home, GOOS: "linux",
			Getenv: func(k string) string { return map[string]string{"XDG_RUNTIME_DIR": runDir}[k] }}
		env := cleanEnv("HOME="+home, "XDG_RUNTIME_DIR="+runDir, path, "FAKE_HELPER_LOG="+log)
		getLogin := func() string {
			out, _ := run(t, env, "", skopeo, "login", "--get-login", host)
			return strings.TrimSpace(out)
		}
		Configure(a, Options{Hosts: hosts, Clients: []Client{Containers}})
		if got := getLogin(); got != "helper-user" {
			t.Fatalf("with ~/.config/containers/auth.json wired: %q", got)
		}
		// `podman login` left a static secret in the runtime file, which is read first.
		runtimeFile := filepath.Join(runDir, "containers", "auth.json")
		writeFile(t, runtimeFile, `{"auths":{"`+host+`":{"auth":"c3RhdGljLXVzZXI6c3RhdGljLXBhc3M="}}}`, 0o600) // static-user:static-pass
		if got := getLogin(); got != "static-user" {
			t.Fatalf("expected the runtime file's static login to win, got %q", got)
		}
		w := Inspect(a, hosts, []Client{Containers})
		if len(w[0].Findings) != 1 || w[0].Findings[0].Level != Fail || w[0].Findings[0].Path != runtimeFile {
			t.Fatalf("Inspect did not see the shadowing: %+v", w[0].Findings)
		}
		Configure(a, Options{Hosts: hosts, Clients: []Client{Containers}, FixShadowing: true})
		if got := getLogin(); got != "helper-user" {
			t.Fatalf("after --fix-shadowing: %q", got)
		}
		if w := Inspect(a, hosts, []Client{Containers}); len(w[0].Findings) != 0 {
			t.Fatalf("after the fix: %+v", w[0].Findings)
		}
	})
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
