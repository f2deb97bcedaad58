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

// kube-secret keeps one identity per Secret: a second run replaces (and deletes) the identity
// the first made, and says so; --dry-run says what it would do and creates nothing.
func TestKubeSecretReplacesItsIdentity(t *testing.T) {
	e := newPTEnv(t)
	e.login()
	count := func() int {
		out, errs, code := e.run("", "pull-token", "list", "--json")
		if code != 0 {
			t.Fatalf("pull-token list: %s", errs)
		}
		return strings.Count(out, `"kube-secret-apps-cgr-pull"`)
	}
	if _, errs, code := e.run("", "kube-secret", "--namespace", "apps", "--dry-run"); code != 0 || !strings.Contains(errs, "Would create") || count() != 0 {
		t.Fatalf("dry run: exit %d, %q, %d identities", code, errs, count())
	}
	for i := range 3 {
		out, errs, code := e.run("", "kube-secret", "--namespace", "apps")
		if code != 0 || !strings.Contains(out, "kubernetes.io/dockerconfigjson") {
			t.Fatalf("kube-secret %d: exit %d: %s", i+1, code, errs)
		}
		if i > 0 && !strings.Contains(errs, "Replaced identity") {
			t.Errorf("run %d does not say it replaced the last identity: %q", i+1, errs)
		}
		if n := count(); n != 1 {
			t.Fatalf("after %d runs, %d identities of the Secret exist; want 1", i+1, n)
		}
	}
	if _, errs, code := e.run("", "kube-secret", "--namespace", "apps", "--dry-run"); code != 0 || !strings.Contains(errs, "would replace and delete identity") {
		t.Errorf("dry run with an identity there: %q", errs)
	}
}
