package e2e

// Kubernetes through the built binary: the kubelet's credential provider exchange, decoded with
// the kubelet's own types and codec, for every credential source; and kube-secret's manifest
// piped into kubectl.

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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/kubelet/pkg/apis/credentialprovider"
	"k8s.io/kubelet/pkg/apis/credentialprovider/install"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	"sigs.k8s.io/yaml"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// kubeletCodecs is the kubelet's codec for plugin requests and responses, strict.
func kubeletCodecs() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict)
}

// kubelet runs `kubelet-provider` as the kubelet does: a CredentialProviderRequest for image,
// encoded by the kubelet's codec, on stdin. It returns the response decoded as the kubelet
// decodes it (strict), and checked strictly against the v1 types.
func (w *world) kubelet(image string) (*credentialproviderv1.CredentialProviderResponse, result) {
	w.t.Helper()
	codecs := kubeletCodecs()
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	if !ok {
		w.t.Fatal("no JSON serializer")
	}
	req, err := runtime.Encode(codecs.EncoderForVersion(info.Serializer, credentialproviderv1.SchemeGroupVersion),
		&credentialprovider.CredentialProviderRequest{Image: image})
	if err != nil {
		w.t.Fatal(err)
	}
	r := w.helper(string(req), "kubelet-provider")
	if r.code != 0 {
		return nil, r
	}
	noJWTIn(w.t, "kubelet-provider's stderr", r.stderr)
	out := []byte(r.stdout)
	obj, gvk, err := codecs.UniversalDecoder(credentialproviderv1.SchemeGroupVersion).Decode(out, nil, nil)
	if err != nil {
		w.t.Fatalf("the kubelet cannot decode the response: %v", err)
	}
	if gvk.GroupVersion() != credentialproviderv1.SchemeGroupVersion || gvk.Kind != "CredentialProviderResponse" {
		w.t.Fatalf("response is %v", gvk)
	}
	if _, ok := obj.(*credentialproviderv1.CredentialProviderResponse); !ok {
		w.t.Fatalf("decoded as %T", obj)
	}
	var resp credentialproviderv1.CredentialProviderResponse
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		w.t.Fatalf("response does not match the v1 types: %v", err)
	}
	if resp.APIVersion != credentialproviderv1.SchemeGroupVersion.String() || resp.Kind != "CredentialProviderResponse" {
		w.t.Fatalf("response type meta %+v", resp.TypeMeta)
	}
	return &resp, r
}

// pullWith pulls the private image with a username and password (as docker config auth).
func (w *world) pullWith(user, pass string) error {
	w.t.Helper()
	ref, err := name.ParseReference(w.emu.PrivateImage(), name.Insecure)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})))
	return err
}

// The kubelet asks for the private image; each credential source answers with credentials
// that pull it, cached for less than they live.
func TestKubeletProviderThroughBinary(t *testing.T) {
	for _, source := range []struct {
		name  string
		setup func(w *world) (wantUser string)
	}{
		{"login session", func(w *world) string {
			w.login()
			return "_token"
		}},
		{"saved pull token, no session", func(w *world) string {
			w.login()
			id, _ := w.pullToken("--save", "--ttl", "24h")
			if r := w.helper("", "logout"); r.code != 0 {
				w.t.Fatalf("logout: exit %d: %s", r.code, r.stderr)
			}
			return id
		}},
		{"workload identity", func(w *world) string {
			const subject, aud = "system:serviceaccount:kube-system:node", "cgr-kubelet"
			w.env["CGR_IDENTITY"] = w.emu.AddAssumableIdentity(w.emu.Org(), w.emu.OIDCIssuerURL(), subject, aud)
			tokFile := filepath.Join(w.home, "oidc-token")
			w.write(tokFile, w.emu.MintOIDCToken(subject, aud, time.Hour))
			w.env["CGR_IDENTITY_TOKEN"] = tokFile
			return "_token"
		}},
	} {
		t.Run(source.name, func(t *testing.T) {
			w := newWorld(t, emulator.Options{})
			host := w.emu.RegistryHost()
			wantUser := source.setup(w)

			resp, r := w.kubelet(w.emu.PrivateImage())
			if r.code != 0 {
				t.Fatalf("kubelet-provider: exit %d: %s", r.code, r.stderr)
			}
			if resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType {
				t.Errorf("cacheKeyType %q; want %q", resp.CacheKeyType, credentialproviderv1.RegistryPluginCacheKeyType)
			}
			a, ok := resp.Auth[host]
			if !ok || len(resp.Auth) != 1 {
				t.Fatalf("auth for %d hosts; want exactly %s", len(resp.Auth), host)
			}
			if a.Username != wantUser {
				t.Errorf("username %q; want %q", a.Username, wantUser)
			}
			life := expiryOf(t, a.Password).Sub(w.emu.Clock().Now())
			if resp.CacheDuration == nil || resp.CacheDuration.Duration <= 0 || resp.CacheDuration.Duration >= life {
				t.Errorf("cacheDuration %v; want positive and shorter than the credential's remaining %v", resp.CacheDuration, life.Round(time.Second))
			}
			if err := w.pullWith(a.Username, a.Password); err != nil {
				t.Fatalf("the answer's credentials do not pull %s: %v", w.emu.PrivateImage(), err)
			}

			// An image of a registry we do not serve (a matchImages too wide): no credentials,
			// exit 0, cached an hour per registry, as the README says.
			resp, r = w.kubelet("registry.example.com/acme/app:latest")
			if r.code != 0 {
				t.Fatalf("kubelet-provider for another registry: exit %d: %s", r.code, r.stderr)
			}
			if len(resp.Auth) != 0 || resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType ||
				resp.CacheDuration == nil || resp.CacheDuration.Duration != time.Hour {
				t.Errorf("another registry: %d auth entries, cacheKeyType %q, cacheDuration %v; want none, Registry, 1h",
					len(resp.Auth), resp.CacheKeyType, resp.CacheDuration)
			}
		})
	}
}

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
// kubernetes.io/dockerconfigjson whose credentials pull the private image.
//
// kubectl needs a server even for a client-side dry run (discovery), so a stub answers it, with
// no kubeconfig and an empty HOME. Its schema validation needs the server's protobuf OpenAPI,
// hence --validate=false; the strict decode of its output into core/v1 stands in for it.
func TestKubeSecretThroughKubectl(t *testing.T) {
	kubectl := need(t, "kubectl")
	w := newWorld(t, emulator.Options{})
	w.login()
	host := w.emu.RegistryHost()
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
			helper.Env = w.environ()
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

			var s corev1.Secret
			if err := yaml.UnmarshalStrict(kcOut.Bytes(), &s); err != nil {
				t.Fatalf("kubectl's output is not a core/v1 Secret: %v", err)
			}
			if s.Kind != "Secret" || s.Type != corev1.SecretTypeDockerConfigJson || s.Name != "cgr-pull" || s.Namespace != "apps" {
				t.Fatalf("kubectl read %s %s/%s of type %q; want Secret apps/cgr-pull of type %s",
					s.Kind, s.Namespace, s.Name, s.Type, corev1.SecretTypeDockerConfigJson)
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
			if err := w.pullWith(a.Username, a.Password); err != nil {
				t.Fatalf("the Secret's credentials do not pull %s: %v", w.emu.PrivateImage(), err)
			}
		})
	}
}

// With the issuer's clock 30 minutes ahead of ours, a credential's exp is 30 minutes further
// off by our clock than it really is. The kubelet must still be told to cache each answer for
// less than the credential lives: the session's and the pull token's skew, not our clock.
func TestKubeletProviderIssuerClockAhead(t *testing.T) {
	for _, source := range []struct {
		name  string
		setup func(w *world)
	}{
		{"login session", func(w *world) { w.login() }},
		{"saved pull token", func(w *world) {
			w.login()
			w.pullToken("--save", "--ttl", "20m")
		}},
		{"workload identity", func(w *world) {
			const subject, aud = "system:serviceaccount:kube-system:node", "cgr-kubelet"
			w.env["CGR_IDENTITY"] = w.emu.AddAssumableIdentity(w.emu.Org(), w.emu.OIDCIssuerURL(), subject, aud)
			tokFile := filepath.Join(w.home, "oidc-token")
			w.write(tokFile, w.emu.MintOIDCToken(subject, aud, time.Hour))
			w.env["CGR_IDENTITY_TOKEN"] = tokFile
		}},
	} {
		t.Run(source.name, func(t *testing.T) {
			w := newWorld(t, emulator.Options{Clock: emulator.NewClock(time.Now().Add(30 * time.Minute)), TokenTTL: 10 * time.Minute})
			source.setup(w)
			resp, r := w.kubelet(w.emu.PrivateImage())
			if r.code != 0 {
				t.Fatalf("kubelet-provider: exit %d: %s", r.code, r.stderr)
			}
			a := resp.Auth[w.emu.RegistryHost()]
			life := expiryOf(t, a.Password).Sub(w.emu.Clock().Now())
			if resp.CacheDuration == nil || resp.CacheDuration.Duration <= 0 || resp.CacheDuration.Duration >= life {
				t.Errorf("cacheDuration %v; want positive and shorter than the credential's remaining %v (by the issuer's clock)",
					resp.CacheDuration, life.Round(time.Second))
			}
			if err := w.pullWith(a.Username, a.Password); err != nil {
				t.Fatalf("the answer's credentials do not pull: %v", err)
			}
		})
	}
}
