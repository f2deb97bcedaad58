// Package kubelet runs the built helper as the kubelet runs an image credential provider: the
// kubelet's own plugin code (k8s.io/kubernetes/pkg/credentialprovider/plugin, v1.37.2) reads
// the documented CredentialProviderConfig, execs the binary, decodes its answers with its
// strict codec and caches them, for v1 and v1beta1 providers, for every credential source, and
// in service-account-token mode with the emulator as the cluster's OIDC issuer. The answers'
// credentials then pull the private image from the emulator.
//
// It is a module of its own (e2e/kubelet/go.mod) so that k8s.io/kubernetes and its staging
// modules stay out of the product's go.mod; scripts/test.sh runs it after the product's tests.
package kubelet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	helperBin   string // the built docker-credential-cgr
	emulatorBin string // cgr-emulator, whose `browse` is the fake browser of a login
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(runKubelet())
	}
	dir, err := os.MkdirTemp("", "cgr-kubelet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperBin, emulatorBin, err = build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build builds the helper and the emulator from the product's module (this module replaces it
// with the checkout above), as `make build` and internal/e2etest do: CGO_ENABLED=0, -trimpath.
// internal/e2etest.Build cannot be used from here: it finds the module to build with
// `go env GOMOD`, which in this directory names this module.
func build(dir string) (helper, emu string, err error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cgrtools/docker-credential-cgr").Output()
	if err != nil {
		return "", "", fmt.Errorf("finding the product's module: %w", err)
	}
	root := strings.TrimSpace(string(out))
	helper, emu = filepath.Join(dir, "bin", "docker-credential-cgr"), filepath.Join(dir, "bin", "cgr-emulator")
	for bin, pkg := range map[string]string{helper: ".", emu: "./internal/emulator/cmd/cgr-emulator"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("building %s in %s: %v\n%s", pkg, root, err, out)
		}
	}
	return helper, emu, nil
}
