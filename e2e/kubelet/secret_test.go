package kubelet

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// kubectlStub answers the discovery requests of kubectl's client-side dry run (it maps the
// manifest's kind to a resource before it prints): the core group, with secrets. Anything else
// kubectl asks is a 404; a write fails the test.
func kubectlStub(t *testing.T) *httptest.Server {
	discovery := map[string]string{
		"/api":    `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`,
		"/apis":   `{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`,
		"/api/v1": `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["create","get","list"]}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("kubectl's client-side dry run sent %s %s", r.Method, r.URL.Path)
		}
		if b, ok := discovery[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, b)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// kube-secret's output, YAML and -o json, piped from the binary into
// `kubectl create --dry-run=client -f - -o json`: kubectl accepts it and prints a Secret of type
// kubernetes.io/dockerconfigjson (read strictly as core/v1) whose credentials pull the private
// image.
//
// kubectl needs a server even for a client-side dry run (discovery), so a stub answers it, with
// no kubeconfig and an empty HOME. Its schema validation needs the server's protobuf OpenAPI,
// hence --validate=false; the strict decode of its output into core/v1 stands in for it.
func TestKubeSecretThroughKubectl(t *testing.T) {
	kubectl := e2etest.Need(t, "kubectl")
	n := newNode(t, emulator.Options{})
	n.login()
	host := n.emu.RegistryHost()
	srv := kubectlStub(t)
	kubeHome := t.TempDir()
	kubeEnv := []string{"HOME=" + kubeHome, "KUBECONFIG=" + filepath.Join(kubeHome, "no-such-config"), "PATH=/usr/local/bin:/usr/bin:/bin"}

	for _, format := range []struct {
		name string
		args []string
	}{
		{"yaml", nil},
		{"json", []string{"-o", "json"}},
	} {
		t.Run(format.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			helper := exec.CommandContext(ctx, helperBin, append([]string{"kube-secret", "--namespace", "apps"}, format.args...)...)
			helper.Env = append(n.environ(), "CGR_STORE=file", "CGR_STORE_DIR="+n.storeDir)
			var helperErr bytes.Buffer
			helper.Stderr = &helperErr
			pipe, err := helper.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var manifest bytes.Buffer // what went down the pipe, to check its format
			kc := exec.CommandContext(ctx, kubectl, "create", "--dry-run=client", "--validate=false", "-f", "-", "-o", "json",
				"--server="+srv.URL, "--cache-dir="+filepath.Join(kubeHome, "cache"))
			kc.Env = kubeEnv
			kc.Stdin = io.TeeReader(pipe, &manifest)
			var kcOut, kcErr bytes.Buffer
			kc.Stdout, kc.Stderr = &kcOut, &kcErr
			if err := helper.Start(); err != nil {
				t.Fatal(err)
			}
			kcRunErr := kc.Run()
			helperRunErr := helper.Wait()
			noJWTIn(t, "kube-secret's stderr", helperErr.String())
			noJWTIn(t, "kubectl's stderr", kcErr.String())
			if kcRunErr != nil {
				t.Fatalf("kubectl refused the %s manifest: %v: %s (kube-secret: %v: %s)", format.name, kcRunErr, kcErr.String(), helperRunErr, helperErr.String())
			}
			if helperRunErr != nil {
				t.Fatalf("kube-secret: %v: %s", helperRunErr, helperErr.String())
			}
			if isJSON := json.Valid(manifest.Bytes()); isJSON != (format.name == "json") {
				t.Fatalf("kube-secret %v printed JSON: %v", format.args, isJSON)
			}
			// The manifest itself, strictly as core/v1 (an unknown or misspelt field fails).
			var direct corev1.Secret
			if err := yaml.UnmarshalStrict(manifest.Bytes(), &direct); err != nil {
				t.Fatalf("kube-secret's %s is not a core/v1 Secret: %v", format.name, err)
			}

			var s corev1.Secret
			if err := yaml.UnmarshalStrict(kcOut.Bytes(), &s); err != nil {
				t.Fatalf("kubectl's output is not a core/v1 Secret: %v", err)
			}
			if s.Kind != "Secret" || s.Type != corev1.SecretTypeDockerConfigJson || s.Name != "cgr-pull" || s.Namespace != "apps" {
				t.Fatalf("kubectl read %s %s/%s of type %q; want Secret apps/cgr-pull of type %s",
					s.Kind, s.Namespace, s.Name, s.Type, corev1.SecretTypeDockerConfigJson)
			}
			if len(s.Data) != 1 || !bytes.Equal(s.Data[corev1.DockerConfigJsonKey], direct.Data[corev1.DockerConfigJsonKey]) {
				t.Fatalf("kubectl's Secret holds %d keys, not the manifest's %s", len(s.Data), corev1.DockerConfigJsonKey)
			}
			var cfg struct {
				Auths map[string]struct {
					Username string `json:"username"`
					Password string `json:"password"`
					Auth     string `json:"auth"`
				} `json:"auths"`
			}
			dec := json.NewDecoder(bytes.NewReader(s.Data[corev1.DockerConfigJsonKey]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cfg); err != nil {
				t.Fatalf(".dockerconfigjson is not a docker config: %v", err)
			}
			a, ok := cfg.Auths[host]
			if !ok || a.Username == "" || a.Password == "" {
				t.Fatalf("no credentials for %s among %d hosts", host, len(cfg.Auths))
			}
			if basic, err := base64.StdEncoding.DecodeString(a.Auth); err != nil || string(basic) != a.Username+":"+a.Password {
				t.Error("auth is not base64(username:password)")
			}
			if err := n.pull(a.Username, a.Password); err != nil {
				t.Fatalf("the Secret's credentials do not pull %s: %v", n.emu.PrivateImage(), err)
			}
		})
	}
}
