// Package kubelet runs the built helper as the kubelet runs an image credential provider: the
// kubelet's own plugin code (k8s.io/kubernetes/pkg/credentialprovider/plugin, v1.37.2) reads
// the documented CredentialProviderConfig, execs the binary, decodes its answers with its
// strict codec and caches them, for v1 and v1beta1 providers, for every credential source, and
// in service-account-token mode with the emulator as the cluster's OIDC issuer. The answers'
// credentials then pull the private image from the emulator.
//
// It is a module of its own (e2e/kubelet/go.mod) so that k8s.io/kubernetes and its staging
// modules stay out of the product's go.mod; scripts/test.sh runs it after the product's tests,
// with GOLANG_PROTOBUF_REGISTRATION_CONFLICT=warn: k8s.io/kubernetes links etcd's authpb and the
// emulator links Chainguard's SDK, and both register a proto file named "auth.proto".
package kubelet

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
)

var (
	helperBin   string // the built docker-credential-cgr
	emulatorBin string // cgr-emulator, whose `browse` is the fake browser of a login
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(runKubelet())
	}
	b, err := build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperBin, emulatorBin = b.Helper, b.Emulator
	code := m.Run()
	e2etest.Cleanup()
	os.Exit(code)
}

// build builds the helper and the emulator as every binary-level test does
// (internal/e2etest.Build, from the product's module, which this module replaces with the
// checkout above). Build finds the module to build with `go env GOMOD`, which here names this
// module: it runs from the product's root, found through the replace.
func build() (e2etest.Binaries, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cgrtools/docker-credential-cgr").Output()
	if err != nil {
		return e2etest.Binaries{}, fmt.Errorf("finding the product's module: %w", err)
	}
	here, err := os.Getwd()
	if err != nil {
		return e2etest.Binaries{}, err
	}
	if err := os.Chdir(strings.TrimSpace(string(out))); err != nil {
		return e2etest.Binaries{}, err
	}
	defer os.Chdir(here)
	return e2etest.Build()
}
