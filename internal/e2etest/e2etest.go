// Package e2etest is what every binary-level test shares: the binaries, built once per test
// process (go's build cache makes the second package's build a link), and one policy for a
// missing tool. It is test support only; nothing of the product imports it.
package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binaries are the built programs.
type Binaries struct {
	Helper   string // docker-credential-cgr
	Emulator string // cgr-emulator (its `browse` is the fake browser)
	Dir      string // the directory holding both (put it first on PATH)
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// Build builds the helper and the emulator once per process into a temp dir, as `make build`
// does (CGO_ENABLED=0, -trimpath, the nethttpomithttp2 tag), and returns them. The directory is removed
// by Cleanup.
func Build() (Binaries, error) {
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "cgr-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(dir, "bin")
		b := Binaries{Helper: filepath.Join(bin, "docker-credential-cgr"), Emulator: filepath.Join(bin, "cgr-emulator"), Dir: bin}
		for out, pkg := range map[string]string{b.Helper: ".", b.Emulator: "./internal/emulator/cmd/cgr-emulator"} {
			cmd := exec.Command("go", "build", "-trimpath", "-tags", "nethttpomithttp2", "-o", out, pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
		}
		built = b
	})
	return built, buildErr
}

// Cleanup removes what Build made; call it at the end of TestMain.
func Cleanup() {
	if built.Dir != "" {
		os.RemoveAll(filepath.Dir(built.Dir))
	}
}

// ModuleRoot is the directory of the product's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// Strict reports whether a missing tool fails a test rather than skipping it: under CI, and
// under scripts/test.sh (`make test`), which installs every tool first and sets
// CGR_E2E_STRICT=1. Elsewhere (a bare `go test ./e2e` on a laptop) a test whose tool is not
// installed is skipped with the reason.
func Strict() bool {
	for _, k := range []string{"CGR_E2E_STRICT", "CI"} {
		switch strings.ToLower(strings.TrimSpace(os.Getenv(k))) {
		case "1", "true", "yes", "on":
			return true
		}
	}
	return false
}

// Missing reports a missing prerequisite by the policy of Strict: a failure, or a skip that
// says what is missing and how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (a missing tool fails under CI and make test; scripts/deps.sh installs it)", msg)
	}
	t.Skipf("%s; scripts/deps.sh installs it", msg)
}

// Need returns the path of an installed command, or reports it missing.
func Need(t testing.TB, cmd string) string {
	t.Helper()
	p, err := exec.LookPath(cmd)
	if err != nil {
		Missing(t, "%s is not installed", cmd)
	}
	return p
}
