package kube_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.yaml.in/yaml/v3"

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

// secretJSON is a core/v1 Secret as far as a registry Secret needs it: a field outside it
// fails the decode. (The real core/v1 type reads the binary's output in e2e/kubelet, through
// kubectl.)
type secretJSON struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Type string            `json:"type"`
	Data map[string][]byte `json:"data"`
}

// decodeSecret reads a manifest (YAML or JSON) strictly as a Secret.
func decodeSecret(t *testing.T, manifest []byte) *secretJSON {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, manifest)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var s secretJSON
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("not a Secret: %v\n%s", err, manifest)
	}
	return &s
}

// dockerAuths reads .dockerconfigjson as the kubelet does.
func dockerAuths(t *testing.T, s *secretJSON) map[string]struct{ Username, Password, Auth string } {
	t.Helper()
	if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != kube.SecretType {
		t.Fatalf("apiVersion %q kind %q type %q; want v1 Secret of type %s", s.APIVersion, s.Kind, s.Type, kube.SecretType)
	}
	raw, ok := s.Data[".dockerconfigjson"]
	if !ok || len(s.Data) != 1 {
		t.Fatalf("data keys %v; want only .dockerconfigjson", s.Data)
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
			if sec.Metadata.Name != "cgr" || sec.Metadata.Namespace != "apps" {
				t.Errorf("metadata %s/%s", sec.Metadata.Namespace, sec.Metadata.Name)
			}
			if got := sec.Metadata.Annotations[kube.AnnotationExpires]; got != pt.Expiry.UTC().Format(time.RFC3339) {
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
	if sec.Metadata.Name != kube.DefaultSecretName || sec.Metadata.Namespace != "" || sec.Metadata.Annotations != nil {
		t.Errorf("defaults: %+v", sec.Metadata)
	}
	if _, err := s.Encode("xml"); err == nil {
		t.Error("unknown output format accepted")
	}
}

// request is a CredentialProviderRequest as the kubelet writes it (its codec's output: type
// meta and the image).
func request(t *testing.T, image string) []byte {
	t.Helper()
	b, err := json.Marshal(kube.Request{APIVersion: kube.Group + "/v1", Kind: "CredentialProviderRequest", Image: image})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// resp is a decoded CredentialProviderResponse.
type resp struct {
	kube.Response
	CacheDuration *time.Duration
}

// response decodes the plugin's answer strictly into the wire type, and checks what the
// kubelet checks first: the request's apiVersion, the kind, a cacheKeyType it knows, a
// cacheDuration it parses. (The kubelet's own codec decodes the binary's answers in
// e2e/kubelet.)
func response(t *testing.T, out []byte) resp {
	t.Helper()
	var r kube.Response
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("response does not match the v1 types: %v\n%s", err, out)
	}
	if r.APIVersion != kube.Group+"/v1" || r.Kind != "CredentialProviderResponse" {
		t.Fatalf("response type %s %s", r.APIVersion, r.Kind)
	}
	switch r.CacheKeyType {
	case "Image", "Registry", "Global":
	default:
		t.Fatalf("cacheKeyType %q is not one the kubelet uses", r.CacheKeyType)
	}
	res := resp{Response: r}
	if r.CacheDuration != nil {
		d, err := time.ParseDuration(*r.CacheDuration)
		if err != nil {
			t.Fatalf("cacheDuration %q: %v", *r.CacheDuration, err)
		}
		res.CacheDuration = &d
	}
	return res
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
	if resp.CacheKeyType != "Registry" {
		t.Errorf("cacheKeyType %q", resp.CacheKeyType)
	}
	remaining := pt.Expiry.Sub(f.emu.Clock().Now())
	if resp.CacheDuration == nil || *resp.CacheDuration <= 0 || *resp.CacheDuration >= remaining {
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
		if resp.CacheDuration == nil || *resp.CacheDuration != life/2 {
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
	if resp := response(t, out); resp.CacheDuration == nil || *resp.CacheDuration != life/2 {
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
	if resp.Auth != nil || resp.CacheDuration == nil || *resp.CacheDuration != 0 {
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
	for _, c := range []struct{ remaining, margin, want time.Duration }{
		{-time.Minute, 0, 0}, {time.Minute, 0, 0}, {10 * time.Minute, 0, 5 * time.Minute},
		{55*time.Minute + 500*time.Millisecond, 0, 27*time.Minute + 30*time.Second}, {720 * time.Hour, 0, time.Hour},
		// A fresh hour-long Chainguard token: half of it.
		{time.Hour, 15 * time.Minute, 30 * time.Minute},
		// 20 minutes left of an hour: get serves it for 5 more minutes, so does the kubelet.
		{20 * time.Minute, 15 * time.Minute, 5*time.Minute - time.Second},
		// Less left than get keeps in reserve (a stale token served while the issuer is down).
		{10 * time.Minute, 15 * time.Minute, 0}, {15 * time.Minute, 15 * time.Minute, 0},
		// A 720h pull token, renewed at 240h left: an hour, until the hour before renewal.
		{480 * time.Hour, 240 * time.Hour, time.Hour}, {240*time.Hour + 30*time.Minute, 240 * time.Hour, 30*time.Minute - time.Second},
	} {
		if got := kube.CacheFor(c.remaining, c.margin); got != c.want {
			t.Errorf("CacheFor(%v, %v) = %v; want %v", c.remaining, c.margin, got, c.want)
		}
	}
}

// The kubelet keeps an answer for its cacheDuration and uses it for every pull in that time.
// At the end of the cache, the credential must still be one `get` serves as it is (CONTRACT
// 1.2: a Chainguard token while Fresh; a pull token until it is Due for renewal), so no client
// of the node is handed a token with less left than `get` guarantees.
func TestCacheForNeverOutlivesGet(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, life := range []time.Duration{3 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute, time.Hour, 8 * time.Hour} {
		for age := time.Duration(0); age < life; age += life / 40 {
			tok := &token.Token{Raw: "x", IssuedAt: now.Add(-age), Expiry: now.Add(life - age)}
			if !tok.Fresh(now) {
				continue // get would not serve it from the cache; kubelet-provider gets a fresh one
			}
			c := kube.TokenCredential(tok, now)
			d := kube.CacheFor(tok.Expiry.Sub(now), c.Margin)
			if d > 0 && !tok.Fresh(now.Add(d)) {
				t.Errorf("a %v token aged %v: cached %v, past the point where get stops serving it", life, age, d)
			}
			if d > life-age {
				t.Errorf("a %v token aged %v: cached %v, past its expiry", life, age, d)
			}
		}
	}
	// A pull token as the chain gives it (a JWT with iat and exp), judged as get judges it.
	for _, ttl := range []time.Duration{time.Hour, 24 * time.Hour, 720 * time.Hour} {
		for age := time.Duration(0); age < ttl; age += ttl / 40 {
			pt := &token.PullToken{Identity: "id", Token: signedJWT(t, now.Add(-age), now.Add(ttl-age)), Expiry: now.Add(ttl - age), TTL: ttl}
			c := kube.CredentialOf(token.Credential{Username: pt.Identity, Secret: pt.Token, Expiry: pt.Expiry}, now)
			d := kube.CacheFor(pt.Expiry.Sub(now), c.Margin)
			if !pt.Due(now) && d > 0 && pt.Due(now.Add(d)) {
				t.Errorf("a %v pull token aged %v: cached %v, past its renewal (its identity is deleted then)", ttl, age, d)
			}
			if pt.Expired(now.Add(d)) && d > 0 {
				t.Errorf("a %v pull token aged %v: cached %v, past its expiry", ttl, age, d)
			}
		}
	}
	// A Chainguard token from the chain: the margin get serves it with.
	for _, life := range []time.Duration{10 * time.Minute, time.Hour} {
		raw := signedJWT(t, now, now.Add(life))
		tok, _ := token.Parse(raw)
		if c := kube.CredentialOf(token.Credential{Username: token.TokenUsername, Secret: raw, Expiry: tok.Expiry}, now); c.Margin != tok.FreshFor() || c.Margin == 0 {
			t.Errorf("a %v token from the chain: margin %v; want its FreshFor %v", life, c.Margin, tok.FreshFor())
		}
	}
	if c := kube.CredentialOf(token.Credential{Username: token.TokenUsername, Secret: "opaque", Expiry: now.Add(time.Hour)}, now); c.Margin != 15*time.Minute {
		t.Errorf("a token whose lifetime is unknown: margin %v; want 15m", c.Margin)
	}
}

// signedJWT is a JWT with these iat and exp, signed by a throwaway key (nothing verifies it).
func signedJWT(t *testing.T, iat, exp time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(jwt.Claims{IssuedAt: jwt.NewNumericDate(iat), Expiry: jwt.NewNumericDate(exp)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
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
