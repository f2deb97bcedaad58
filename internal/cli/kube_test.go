package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
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
	// The example config, cut out of the help, read strictly as the kubelet's v1 type.
	start := strings.Index(h, "apiVersion: kubelet.config.k8s.io/v1")
	if start < 0 {
		t.Fatalf("no CredentialProviderConfig example in:\n%s", h)
	}
	lineStart := strings.LastIndex(h[:start], "\n") + 1
	indent := h[lineStart:start]
	var example strings.Builder
	for _, line := range strings.Split(h[lineStart:], "\n") {
		if strings.TrimSpace(line) == "" {
			break
		}
		example.WriteString(strings.TrimPrefix(line, indent) + "\n")
	}
	var cfg kubeletconfigv1.CredentialProviderConfig
	if err := yaml.UnmarshalStrict([]byte(example.String()), &cfg); err != nil {
		t.Fatalf("the example is not a kubelet CredentialProviderConfig: %v\n%s", err, example.String())
	}
	if cfg.Kind != "CredentialProviderConfig" || len(cfg.Providers) != 1 {
		t.Fatalf("example: kind %q, %d providers", cfg.Kind, len(cfg.Providers))
	}
	p := cfg.Providers[0]
	env := map[string]string{}
	for _, e := range p.Env {
		env[e.Name] = e.Value
	}
	if p.Name != config.AppName || p.APIVersion != "credentialprovider.kubelet.k8s.io/v1" ||
		len(p.Args) != 1 || p.Args[0] != "kubelet-provider" || len(p.MatchImages) != 1 || p.MatchImages[0] != config.DefaultRegistry ||
		p.DefaultCacheDuration == nil || p.DefaultCacheDuration.Duration <= 0 || env["CGR_STORE"] != "file" || env["CGR_STORE_DIR"] == "" {
		t.Errorf("example provider %+v", p)
	}
	// The store the set-up commands write is the one the config names.
	if !strings.Contains(h, "CGR_STORE_DIR="+env["CGR_STORE_DIR"]) {
		t.Errorf("the set-up commands do not use the config's store %s", env["CGR_STORE_DIR"])
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
