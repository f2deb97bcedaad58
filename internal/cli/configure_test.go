package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
	"github.com/cgrtools/docker-credential-cgr/internal/doctor"
)

// configureEnv is a user with a temp home, no sudo, the helper on PATH and a file store.
func configureEnv(t *testing.T) (map[string]string, string) {
	t.Helper()
	home := t.TempDir()
	bin := filepath.Join(home, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, clientconfig.HelperBinary), []byte("#!/bin/sh\n"), 0o755)
	return map[string]string{
		"HOME": home, "PATH": bin, "XDG_RUNTIME_DIR": filepath.Join(home, "run"),
		"CGR_REGISTRY": "cgr.dev,127.0.0.1:5000", "CGR_STORE": "file",
		// Loopback only: a closed port, so the clock check warns at once and no test
		// ever looks up or reaches the real issuer.
		"CGR_ISSUER": "http://127.0.0.1:9", "CGR_API": "http://127.0.0.1:9",
	}, home
}

func execCLI(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	a := &App{Getenv: func(k string) string { return env[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code = Execute(context.Background(), a, args)
	return code, out.String(), errb.String()
}

func TestConfigureCommand(t *testing.T) {
	env, home := configureEnv(t)
	docker := filepath.Join(home, ".docker", "config.json")

	code, out, _ := execCLI(env, "configure")
	if code != 0 || strings.Count(out, "created: added cgr.dev, 127.0.0.1:5000") != 3 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	code, out, _ = execCLI(env, "configure", "--docker")
	if code != 0 || strings.TrimSpace(out) != docker+" (docker): unchanged" {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	code, stdout, _ := execCLI(env, "configure", "--json", "--remove", "--helm")
	var r configureReport
	if code != 0 || json.Unmarshal([]byte(stdout), &r) != nil || len(r.Changes) != 1 || len(r.Changes[0].Removed) != 2 {
		t.Fatalf("--remove --json: exit %d\n%s", code, stdout)
	}
	if code, _, _ := execCLI(env, "configure", "--remove", "--fix-shadowing"); code != 2 {
		t.Errorf("conflicting flags: exit %d, want 2", code)
	}

	os.WriteFile(docker, []byte("{\"auths\": {,}}"), 0o600)
	code, out, _ = execCLI(env, "configure", "--docker")
	if code != 1 || !strings.Contains(out, "invalid JSON at line 1, column 12") || !strings.Contains(out, "left untouched") {
		t.Fatalf("malformed: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(docker); string(b) != "{\"auths\": {,}}" {
		t.Errorf("malformed file changed: %s", b)
	}
}

func TestDoctorCommand(t *testing.T) {
	env, _ := configureEnv(t)
	code, stdout, _ := execCLI(env, "doctor", "--json")
	var r doctor.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, stdout)
	}
	if code != 1 || r.OK {
		t.Fatalf("unwired: exit %d, report %+v", code, r)
	}
	execCLI(env, "configure")
	code, stdout, stderr := execCLI(env, "doctor")
	if code != 0 || !strings.Contains(stdout, "0 fail") {
		t.Fatalf("after configure: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, _ := execCLI(env, "doctor", "--image", "alpine"); code != 2 {
		t.Errorf("--image without a registry: exit %d, want 2", code)
	}
}

// A dry run says what it would change, and what would still be in the way afterwards: no
// failure that its own changes fix, the same findings a real run then reports, nothing written.
func TestConfigureDryRun(t *testing.T) {
	env, home := configureEnv(t)
	docker := filepath.Join(home, ".docker", "config.json")
	os.MkdirAll(filepath.Dir(docker), 0o700)
	static := `{"auths":{"cgr.dev":{"auth":"dXNlcjpwYXNz"},"cgr.dev/acme/app":{"auth":"dXNlcjpwYXNz"}}}`
	os.WriteFile(docker, []byte(static), 0o600)

	code, out, _ := execCLI(env, "configure", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "fail:") || strings.Contains(out, "fix: docker-credential-cgr configure --docker\n") ||
		strings.Contains(out, "no credHelpers entry") || strings.Contains(out, "podman") {
		t.Errorf("a dry run reports failures its own changes fix:\n%s", out)
	}
	for _, want := range []string{
		docker + " (docker): would be updated: added cgr.dev, 127.0.0.1:5000",
		"(containers): would be created: added cgr.dev, 127.0.0.1:5000",
		// Without --fix-shadowing the static secrets stay: said as what would remain.
		`would remain: auths["cgr.dev"] still holds a static secret: unused once credHelpers sends cgr.dev to the helper`,
		`would remain: auths["cgr.dev/acme/app"] holds a static secret; crane, ko and cosign look up the repository`,
		"fix: docker-credential-cgr configure --docker --fix-shadowing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(docker); string(b) != static {
		t.Errorf("the dry run wrote %s", b)
	}
	if _, err := os.Stat(filepath.Join(home, ".config", "helm")); err == nil {
		t.Error("the dry run created helm's config")
	}

	// With --fix-shadowing nothing would remain.
	code, out, _ = execCLI(env, "configure", "--dry-run", "--fix-shadowing")
	if code != 0 || strings.Contains(out, "would remain") || !strings.Contains(out, "would be updated: added cgr.dev, 127.0.0.1:5000; deleted static auths") {
		t.Errorf("dry run --fix-shadowing: exit %d\n%s", code, out)
	}

	// What the dry run said would remain is what the real run leaves.
	findings := func(args ...string) []string {
		t.Helper()
		code, stdout, stderr := execCLI(env, append([]string{"configure", "-o", "json"}, args...)...)
		var r configureReport
		if code != 0 || json.Unmarshal([]byte(stdout), &r) != nil {
			t.Fatalf("configure %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		var out []string
		for _, f := range r.Warnings {
			out = append(out, fmt.Sprintf("%s %s %s %s", f.Level, f.Client, f.Path, f.Fix))
		}
		sort.Strings(out)
		return out
	}
	dry := findings("--dry-run")
	if real := findings(); strings.Join(dry, "\n") != strings.Join(real, "\n") || len(real) != 2 {
		t.Errorf("the dry run said would remain:\n%s\nthe real run left:\n%s", strings.Join(dry, "\n"), strings.Join(real, "\n"))
	}
}
