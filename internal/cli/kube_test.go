package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// help runs `<cmd> --help` and returns what it printed.
func help(t *testing.T, cmd string) string {
	t.Helper()
	var out, errb bytes.Buffer
	a := &App{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code := Execute(ctx, a, []string{cmd, "--help"}); code != 0 {
		t.Fatalf("%s --help: exit %d: %s", cmd, code, errb.String())
	}
	return out.String()
}

// The help alone is enough to set the plugin up: what it is, where the binary goes, and a
// CredentialProviderConfig the kubelet accepts.
func TestKubeletProviderHelp(t *testing.T) {
	h := help(t, "kubelet-provider")
	for _, want := range []string{"CredentialProviderConfig", "credentialprovider.kubelet.k8s.io/v1",
		"--image-credential-provider-bin-dir", "--image-credential-provider-config", "CGR_SUDO_SHARE=false"} {
		if !strings.Contains(h, want) {
			t.Errorf("kubelet-provider --help does not mention %s", want)
		}
	}
	// The example configs are read strictly as the kubelet's v1 type, compared with the
	// README's and fed to the kubelet's own plugin code in e2e/kubelet.
	for _, want := range []string{"CGR_STORE_DIR=/var/lib/docker-credential-cgr", "value: /var/lib/docker-credential-cgr", "tokenAttributes", "--unannotated"} {
		if !strings.Contains(h, want) {
			t.Errorf("kubelet-provider --help does not show %s", want)
		}
	}
}

func TestKubeSecretHelp(t *testing.T) {
	h := help(t, "kube-secret")
	for _, want := range []string{"kubernetes.io/dockerconfigjson", "imagePullSecrets", "kubectl apply -f -", "cgr.dev/expires", "login"} {
		if !strings.Contains(h, want) {
			t.Errorf("kube-secret --help does not mention %s", want)
		}
	}
}
