package kube_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	"k8s.io/kubelet/pkg/apis/credentialprovider"
	"k8s.io/kubelet/pkg/apis/credentialprovider/install"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	"sigs.k8s.io/yaml"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/internal/kube"
	"github.com/cgrtools/docker-credential-cgr/keystore"
	"github.com/cgrtools/docker-credential-cgr/token"
)

type fixture struct {
	t   *testing.T
	emu *emulator.Emulator
	d   token.Deps
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	emu, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	dir := t.TempDir()
	st, err := keystore.Open(context.Background(), keystore.Options{Backend: "file", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, emu: emu, d: token.Deps{
		Settings: config.Settings{
			Registries: []string{emu.RegistryHost()}, Issuer: emu.IssuerURL(), API: emu.APIURL(),
			Audience: config.DefaultAudience, Store: "file", StoreDir: dir,
		},
		Store:       st,
		HTTP:        &http.Client{Timeout: 10 * time.Second},
		Clock:       emu.Clock(),
		Stderr:      &bytes.Buffer{},
		Rand:        rand.Reader,
		OpenBrowser: emu.Browse,
	}}
	if _, err := token.Login(testCtx(t), f.d, token.LoginOptions{}); err != nil {
		t.Fatalf("login: %v", err)
	}
	return f
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func (f *fixture) pullToken() *token.PullToken {
	f.t.Helper()
	pt, err := token.NewPullTokens(f.d, token.NewSession(f.d)).Create(testCtx(f.t), token.CreateOptions{TTL: 24 * time.Hour})
	if err != nil {
		f.t.Fatalf("create: %v", err)
	}
	return pt
}

// pull fetches the private image with these credentials.
func (f *fixture) pull(user, pass string) error {
	ref, err := name.ParseReference(f.emu.PrivateImage(), name.Insecure)
	if err != nil {
		f.t.Fatal(err)
	}
	_, err = remote.Image(ref, remote.WithContext(testCtx(f.t)), remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	return err
}

// decodeSecret reads a manifest strictly as a core/v1 Secret: an unknown or misspelt field fails.
func decodeSecret(t *testing.T, manifest []byte) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(manifest, &s); err != nil {
		t.Fatalf("not a core/v1 Secret: %v\n%s", err, manifest)
	}
	return &s
}

// dockerAuths reads .dockerconfigjson as the kubelet does.
func dockerAuths(t *testing.T, s *corev1.Secret) map[string]struct{ Username, Password, Auth string } {
	t.Helper()
	if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != corev1.SecretTypeDockerConfigJson {
		t.Fatalf("apiVersion %q kind %q type %q; want v1 Secret of type %s", s.APIVersion, s.Kind, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	raw, ok := s.Data[corev1.DockerConfigJsonKey]
	if !ok || len(s.Data) != 1 {
		t.Fatalf("data keys %v; want only %s", s.Data, corev1.DockerConfigJsonKey)
	}
	var cfg struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		} `json:"auths"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf(".dockerconfigjson is not a docker config: %v", err)
	}
	out := map[string]struct{ Username, Password, Auth string }{}
	for h, a := range cfg.Auths {
		out[h] = struct{ Username, Password, Auth string }{a.Username, a.Password, a.Auth}
	}
	return out
}

func TestSecretPullsFromRegistry(t *testing.T) {
	f := newFixture(t)
	pt := f.pullToken()
	host := f.emu.RegistryHost()
	s, err := kube.NewSecret(kube.SecretOptions{
		Name: "cgr", Namespace: "apps", Hosts: []string{host, "cgr.dev"},
		Username: pt.Identity, Password: pt.Token, Expiry: pt.Expiry, Identity: pt.Identity,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			b, err := s.Encode(format)
			if err != nil {
				t.Fatal(err)
			}
			if format == "json" && !json.Valid(b) {
				t.Fatalf("-o json is not JSON:\n%s", b)
			}
			if format == "yaml" && json.Valid(b) {
				t.Fatalf("-o yaml printed JSON")
			}
			sec := decodeSecret(t, b)
			if sec.Name != "cgr" || sec.Namespace != "apps" {
				t.Errorf("metadata %s/%s", sec.Namespace, sec.Name)
			}
			if got := sec.Annotations[kube.AnnotationExpires]; got != pt.Expiry.UTC().Format(time.RFC3339) {
				t.Errorf("expiry annotation %q", got)
			}
			auths := dockerAuths(t, sec)
			if len(auths) != 2 {
				t.Fatalf("auths for %d hosts; want 2", len(auths))
			}
			a := auths[host]
			if a.Username != pt.Identity || a.Password != pt.Token {
				t.Fatal("the Secret does not hold the pull token")
			}
			if basic, _ := base64.StdEncoding.DecodeString(a.Auth); string(basic) != pt.Identity+":"+pt.Token {
				t.Error("auth is not base64(username:password)")
			}
			if err := f.pull(a.Username, a.Password); err != nil {
				t.Fatalf("the Secret's credentials do not pull %s: %v", f.emu.PrivateImage(), err)
			}
		})
	}
}

func TestSecretNames(t *testing.T) {
	for _, c := range []struct {
		name, ns string
		ok       bool
	}{
		{"", "", true}, {"cgr-pull", "default", true}, {"a.b-c", "kube-system", true},
		{"Cgr", "", false}, {"cgr_pull", "", false}, {"x", "a.b", false}, {"-x", "", false}, {strings.Repeat("a", 254), "", false},
	} {
		_, err := kube.NewSecret(kube.SecretOptions{Name: c.name, Namespace: c.ns, Hosts: []string{"cgr.dev"}})
		if (err == nil) != c.ok {
			t.Errorf("name %q namespace %q: err %v; want ok=%v", c.name, c.ns, err, c.ok)
		}
	}
	s, err := kube.NewSecret(kube.SecretOptions{Hosts: []string{"cgr.dev"}, Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Encode("yaml")
	sec := decodeSecret(t, b)
	if sec.Name != kube.DefaultSecretName || sec.Namespace != "" || sec.Annotations != nil {
		t.Errorf("defaults: %+v", sec.ObjectMeta)
	}
	if _, err := s.Encode("xml"); err == nil {
		t.Error("unknown output format accepted")
	}
}

// kubectl accepts the manifest. With no cluster, a stub API server answers discovery, and
// kubectl's client-side dry run prints the object it would create.
func TestSecretKubectlDryRun(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is not installed: scripts/deps.sh installs it")
	}
	discovery := map[string]string{
		"/api":    `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`,
		"/apis":   `{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`,
		"/api/v1": `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["create","get","list"]}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := discovery[r.URL.Path]; ok && r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, b)
			return
		}
		if r.Method != http.MethodGet {
			t.Errorf("kubectl dry run sent %s %s", r.Method, r.URL.Path)
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()

	s, err := kube.NewSecret(kube.SecretOptions{
		Name: "cgr-pull", Namespace: "apps", Hosts: []string{"cgr.dev"}, Username: "0123456789012345678901234567890123456789/0123456789abcdef",
		Password: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Identity: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"yaml", "json"} {
		manifest, _ := s.Encode(format)
		cmd := exec.Command(kubectl, "create", "--dry-run=client", "--validate=false", "-f", "-", "-o", "json",
			"--server="+srv.URL, "--cache-dir="+t.TempDir())
		home := t.TempDir() // no user kubeconfig or cache is read or written
		cmd.Env = []string{"HOME=" + home, "KUBECONFIG=" + home + "/config"}
		cmd.Stdin = bytes.NewReader(manifest)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl create --dry-run=client (%s): %v: %s", format, err, stderr.String())
		}
		var got corev1.Secret
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("kubectl output: %v", err)
		}
		if got.Type != corev1.SecretTypeDockerConfigJson || got.Namespace != "apps" ||
			!bytes.Equal(got.Data[corev1.DockerConfigJsonKey], s.Data[".dockerconfigjson"]) {
			t.Errorf("kubectl read the %s manifest as %s", format, out)
		}
	}
}

// The kubelet's own codec for plugin responses, strict.
func kubeletCodecs() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict)
}

// request is what the kubelet writes on the plugin's stdin, encoded by its own codec.
func request(t *testing.T, image string) []byte {
	t.Helper()
	codecs := kubeletCodecs()
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	if !ok {
		t.Fatal("no JSON serializer")
	}
	enc := codecs.EncoderForVersion(info.Serializer, credentialproviderv1.SchemeGroupVersion)
	b, err := runtime.Encode(enc, &credentialprovider.CredentialProviderRequest{Image: image})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// response decodes the plugin's answer as the kubelet does (apiVersion check, then its
// decoder, strict), and once more strictly into the v1 types.
func response(t *testing.T, out []byte) *credentialproviderv1.CredentialProviderResponse {
	t.Helper()
	obj, gvk, err := kubeletCodecs().UniversalDecoder(credentialproviderv1.SchemeGroupVersion).Decode(out, nil, nil)
	if err != nil {
		t.Fatalf("the kubelet cannot decode the response: %v\n%s", err, out)
	}
	if gvk.GroupVersion() != credentialproviderv1.SchemeGroupVersion || gvk.Kind != "CredentialProviderResponse" {
		t.Fatalf("response is %v", gvk)
	}
	if _, ok := obj.(*credentialproviderv1.CredentialProviderResponse); !ok {
		t.Fatalf("decoded as %T", obj)
	}
	var v1 credentialproviderv1.CredentialProviderResponse
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v1); err != nil {
		t.Fatalf("response does not match the v1 types: %v", err)
	}
	if v1.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || v1.Kind != "CredentialProviderResponse" {
		t.Fatalf("response type meta %+v", v1.TypeMeta)
	}
	switch v1.CacheKeyType {
	case credentialproviderv1.ImagePluginCacheKeyType, credentialproviderv1.RegistryPluginCacheKeyType, credentialproviderv1.GlobalPluginCacheKeyType:
	default:
		t.Fatalf("cacheKeyType %q is not one the kubelet uses", v1.CacheKeyType)
	}
	return &v1
}

func serve(t *testing.T, p *kube.Provider, in []byte) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	err := p.Serve(testCtx(t), bytes.NewReader(in), &out)
	return out.Bytes(), err
}

func TestProviderPullsFromRegistry(t *testing.T) {
	f := newFixture(t)
	pts := token.NewPullTokens(f.d, token.NewSession(f.d))
	pt := f.pullToken()
	if err := pts.Keep(testCtx(t), pt); err != nil {
		t.Fatal(err)
	}
	host := f.emu.RegistryHost()
	p := &kube.Provider{
		Hosts: []string{host},
		Now:   f.emu.Clock().Now,
		Get: func(ctx context.Context, h string) (kube.Credential, error) {
			pt, err := pts.Get(ctx, h)
			if err != nil {
				return kube.Credential{}, err
			}
			return kube.Credential{Username: pt.Identity, Password: pt.Token, Expiry: pt.Expiry}, nil
		},
	}
	out, err := serve(t, p, request(t, f.emu.PrivateImage()))
	if err != nil {
		t.Fatal(err)
	}
	resp := response(t, out)
	if resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType {
		t.Errorf("cacheKeyType %q", resp.CacheKeyType)
	}
	remaining := pt.Expiry.Sub(f.emu.Clock().Now())
	if resp.CacheDuration == nil || resp.CacheDuration.Duration <= 0 || resp.CacheDuration.Duration >= remaining {
		t.Errorf("cacheDuration %v; want positive and shorter than the credential's %v", resp.CacheDuration, remaining)
	}
	a, ok := resp.Auth[host]
	if !ok || len(resp.Auth) != 1 {
		t.Fatalf("auth keys %d; want exactly %s", len(resp.Auth), host)
	}
	if err := f.pull(a.Username, a.Password); err != nil {
		t.Fatalf("the provider's credentials do not pull: %v", err)
	}
}

// A credential's expiry is in the issuer's clock: the cache duration is judged by the issuer's
// time its source reports, not by ours, whichever way our clock is off.
func TestProviderCacheUsesIssuerClock(t *testing.T) {
	local := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	const life = 40 * time.Minute // true remaining life; half of it may be cached
	for _, skew := range []time.Duration{50 * time.Minute, -50 * time.Minute, 0} {
		issuerNow := local.Add(skew)
		p := &kube.Provider{
			Hosts: []string{"cgr.dev"},
			Now:   func() time.Time { return local },
			Get: func(context.Context, string) (kube.Credential, error) {
				return kube.Credential{Username: "_token", Password: "tok", Expiry: issuerNow.Add(life), IssuerNow: issuerNow}, nil
			},
		}
		out, err := serve(t, p, request(t, "cgr.dev/acme/app:latest"))
		if err != nil {
			t.Fatal(err)
		}
		resp := response(t, out)
		if resp.CacheDuration == nil || resp.CacheDuration.Duration != life/2 {
			t.Errorf("issuer clock %v from ours, %v left: cacheDuration %v; want %v", skew, life, resp.CacheDuration, life/2)
		}
	}
	// No issuer time known: the provider's clock.
	p := &kube.Provider{
		Hosts: []string{"cgr.dev"},
		Now:   func() time.Time { return local },
		Get: func(context.Context, string) (kube.Credential, error) {
			return kube.Credential{Username: "_token", Password: "tok", Expiry: local.Add(life)}, nil
		},
	}
	out, err := serve(t, p, request(t, "cgr.dev/acme/app:latest"))
	if err != nil {
		t.Fatal(err)
	}
	if resp := response(t, out); resp.CacheDuration == nil || resp.CacheDuration.Duration != life/2 {
		t.Errorf("without an issuer time: cacheDuration %v; want %v", resp.CacheDuration, life/2)
	}
}

func TestProviderForeignAndUnconfigured(t *testing.T) {
	calls := 0
	var getErr error
	p := &kube.Provider{
		Hosts: []string{"cgr.dev", "127.0.0.1:5000"},
		Get: func(context.Context, string) (kube.Credential, error) {
			calls++
			return kube.Credential{}, getErr
		},
	}
	for _, image := range []string{"docker.io/library/nginx:latest", "nginx", "cgr.dev.evil.com/chainguard/static", "127.0.0.1:5001/x/y", "evil.com/cgr.dev/x"} {
		out, err := serve(t, p, request(t, image))
		if err != nil {
			t.Fatalf("%s: %v", image, err)
		}
		if resp := response(t, out); resp.Auth != nil {
			t.Errorf("%s: credentials for a foreign image", image)
		}
	}
	if calls != 0 {
		t.Fatalf("the getter ran %d times for foreign images", calls)
	}

	getErr = fmt.Errorf("wrapped: %w", token.ErrNoCredential)
	out, err := serve(t, p, request(t, "cgr.dev/chainguard/static:latest"))
	if err != nil {
		t.Fatal(err)
	}
	resp := response(t, out)
	if resp.Auth != nil || resp.CacheDuration == nil || resp.CacheDuration.Duration != 0 {
		t.Errorf("nothing configured: auth %v cacheDuration %v; want none, not cached", resp.Auth, resp.CacheDuration)
	}

	getErr = &token.FixableError{Cause: "the pull token for cgr.dev expired at 2026-01-01 00:00 UTC", Fix: "docker-credential-cgr login"}
	if _, err := serve(t, p, request(t, "cgr.dev/chainguard/static:latest")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a credential that cannot be made valid: %v; want the error (kubelet logs it)", err)
	}
}

func TestProviderRequests(t *testing.T) {
	p := &kube.Provider{Hosts: []string{"cgr.dev"}, Get: func(context.Context, string) (kube.Credential, error) {
		return kube.Credential{Username: "_token", Password: "tok", Expiry: time.Now().Add(time.Hour)}, nil
	}}
	// Older kubelets speak v1beta1/v1alpha1 (same schema): answered in the same version.
	for _, v := range []string{"v1beta1", "v1alpha1"} {
		in := fmt.Sprintf(`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/%s","image":"cgr.dev/x/y"}`, v)
		out, err := serve(t, p, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ APIVersion string }
		_ = json.Unmarshal(out, &got)
		if got.APIVersion != "credentialprovider.kubelet.k8s.io/"+v {
			t.Errorf("answered %s to %s", got.APIVersion, v)
		}
	}
	// Fields a newer kubelet adds are ignored.
	in := `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"cgr.dev/x/y","serviceAccountToken":"t","somethingNew":1}`
	if _, err := serve(t, p, []byte(in)); err != nil {
		t.Errorf("request with extra fields: %v", err)
	}
	for _, bad := range []string{``, `{}`, `not json`, `{"kind":"Pod","apiVersion":"v1"}`,
		`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":""}`} {
		if _, err := serve(t, p, []byte(bad)); err == nil {
			t.Errorf("request %q accepted", bad)
		}
	}
}

func TestCacheFor(t *testing.T) {
	for _, c := range []struct{ remaining, want time.Duration }{
		{-time.Minute, 0}, {time.Minute, 0}, {10 * time.Minute, 5 * time.Minute},
		{55*time.Minute + 500*time.Millisecond, 27*time.Minute + 30*time.Second}, {720 * time.Hour, time.Hour},
	} {
		if got := kube.CacheFor(c.remaining); got != c.want {
			t.Errorf("CacheFor(%v) = %v; want %v", c.remaining, got, c.want)
		}
	}
}

func TestImageHost(t *testing.T) {
	for in, want := range map[string]string{
		"cgr.dev/chainguard/static:latest": "cgr.dev", "CGR.dev/x@sha256:00": "cgr.dev", "127.0.0.1:5000/a/b": "127.0.0.1:5000",
		"localhost/x": "localhost", "nginx": "docker.io", "library/nginx": "docker.io",
	} {
		if got := kube.ImageHost(in); got != want {
			t.Errorf("ImageHost(%q) = %q; want %q", in, got, want)
		}
	}
}

// The README's CredentialProviderConfig is one the kubelet reads (strictly, as its v1 type).
func TestReadmeProviderConfig(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1)
	found := 0
	for _, m := range blocks {
		if !bytes.Contains(m[1], []byte("kind: CredentialProviderConfig")) {
			continue
		}
		found++
		var cfg kubeletconfigv1.CredentialProviderConfig
		if err := yaml.UnmarshalStrict(m[1], &cfg); err != nil {
			t.Fatalf("README's CredentialProviderConfig: %v", err)
		}
		if len(cfg.Providers) != 1 || cfg.Providers[0].APIVersion != kube.Group+"/v1" || cfg.Providers[0].DefaultCacheDuration == nil ||
			len(cfg.Providers[0].Args) != 1 || cfg.Providers[0].Args[0] != "kubelet-provider" {
			t.Errorf("README's provider: %+v", cfg.Providers)
		}
	}
	if found != 1 {
		t.Fatalf("%d CredentialProviderConfig examples in README.md; want 1", found)
	}
}
