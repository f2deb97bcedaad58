package kubelet

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/internal/kube"
)

// sources are the node's own credentials, each set up as README step 2 says. setup returns the
// username the kubelet should be handed.
var sources = []struct {
	name  string
	setup func(n *node, cfg *kubeletconfigv1.CredentialProviderConfig) string
}{
	{"login session", func(n *node, _ *kubeletconfigv1.CredentialProviderConfig) string {
		n.login()
		return "_token"
	}},
	{"saved pull token, no session", func(n *node, _ *kubeletconfigv1.CredentialProviderConfig) string {
		return n.savePullToken("24h")
	}},
	{"workload identity", func(n *node, cfg *kubeletconfigv1.CredentialProviderConfig) string {
		n.workloadIdentity(cfg)
		return "_token"
	}},
}

// The kubelet, with the documented config (as a v1 and as a v1beta1 provider), asks for the
// private image; each credential source answers with credentials that pull it. The kubelet
// keeps the answer: the same registry's images within cacheDuration do not run the plugin
// again. An image the config does not match never runs it.
func TestKubeletSources(t *testing.T) {
	for _, source := range sources {
		for _, version := range []string{"v1", "v1beta1"} {
			t.Run(source.name+"/"+version, func(t *testing.T) {
				n := newNode(t, emulator.Options{})
				cfg := n.config(nodeConfig)
				cfg.Providers[0].APIVersion = kube.Group + "/" + version
				wantUser := source.setup(n, cfg)
				k := n.kubelet(cfg)
				web := podOf("apps", "web-1", "default")

				got := k.lookup(n.emu.PrivateImage(), web)
				if len(got) != 1 {
					t.Fatalf("the kubelet has %d credentials for %s; want 1\nits log:\n%s", len(got), n.emu.PrivateImage(), k.log)
				}
				if got[0].Username != wantUser {
					t.Errorf("username %q; want %q", got[0].Username, wantUser)
				}
				if err := n.pull(got[0].Username, got[0].Password); err != nil {
					t.Fatalf("the kubelet's credentials do not pull %s: %v", n.emu.PrivateImage(), err)
				}
				execs := k.execs()
				if len(execs) != 1 {
					t.Fatalf("the plugin ran %d times; want 1", len(execs))
				}
				rec := execs[0]
				if rec.Request.APIVersion != kube.Group+"/"+version || rec.Request.Kind != "CredentialProviderRequest" || rec.Code != 0 {
					t.Fatalf("request %s %s, exit %d", rec.Request.APIVersion, rec.Request.Kind, rec.Code)
				}
				if strings.Join(rec.Args, " ") != "kubelet-provider" {
					t.Errorf("the plugin ran with %q", rec.Args)
				}
				resp := rec.response(t)
				if resp.APIVersion != rec.Request.APIVersion || resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType {
					t.Errorf("answer %s, cacheKeyType %q; want %s, Registry", resp.APIVersion, resp.CacheKeyType, rec.Request.APIVersion)
				}
				checkCacheDuration(t, n, rec, got[0])
				noJWTIn(t, "the plugin's stderr", rec.Stderr)

				// Cached per registry: this image again, and another of the same registry.
				for _, image := range []string{n.emu.PrivateImage(), n.privateImage2()} {
					again := k.lookup(image, podOf("apps", "web-2", "default"))
					if len(again) != 1 || again[0] != got[0] {
						t.Errorf("%s within cacheDuration: %d credentials, not the cached ones", image, len(again))
					}
				}
				// An image of another registry: not matched, so the plugin is not asked.
				if other := k.lookup("registry.example.com/acme/app:latest", web); len(other) != 0 {
					t.Errorf("credentials for registry.example.com")
				}
				if n := len(k.execs()); n != 1 {
					t.Errorf("the plugin ran %d times for lookups within cacheDuration; want once", n)
				}
				noJWTIn(t, "the kubelet's log", k.log.String())
			})
		}
	}
}

// checkCacheDuration: the kubelet may keep the answer for less than the credential lives, and
// never past the point where `get` would stop serving it and hand out another (CONTRACT 1.2):
// a Chainguard token while more than min(15 minutes, half its lifetime) remains; a pull token
// until a third of its lifetime remains (renewed then, and the old identity deleted).
func checkCacheDuration(t *testing.T, n *node, rec execRecord, c found) {
	t.Helper()
	resp := rec.response(t)
	if resp.CacheDuration == nil || resp.CacheDuration.Duration <= 0 {
		t.Fatalf("cacheDuration %v; want positive", resp.CacheDuration)
	}
	tok := claims(t, c.Password)
	life := tok.Lifetime()
	issuerAhead := n.emu.Clock().Now().Sub(time.Now())
	remaining := tok.Expiry.Sub(rec.At.Add(issuerAhead)) // when the plugin answered, by the issuer's clock
	margin := min(15*time.Minute, life/2)
	if c.Username != "_token" {
		margin = life / 3
	}
	if d := resp.CacheDuration.Duration; d > remaining-margin || d > time.Hour {
		t.Errorf("cacheDuration %v for a credential of %v with %v left: the kubelet would keep it past the point where get serves another (%v before expiry)",
			d, life, remaining.Round(time.Second), margin)
	}
}

// Nothing configured on the node: the kubelet gets no credentials and pulls anonymously (the
// public image works, the private one does not), and asks again at the next pull.
func TestKubeletNothingConfigured(t *testing.T) {
	n := newNode(t, emulator.Options{})
	k := n.kubelet(n.config(nodeConfig))
	for i := 0; i < 2; i++ {
		if got := k.lookup(n.emu.PrivateImage(), podOf("apps", "web", "default")); len(got) != 0 {
			t.Fatalf("credentials with nothing configured")
		}
	}
	execs := k.execs()
	if len(execs) != 2 {
		t.Fatalf("the plugin ran %d times for two lookups; want 2 (an empty answer is not cached)", len(execs))
	}
	for _, rec := range execs {
		resp := rec.response(t)
		if rec.Code != 0 || resp.Auth != nil || resp.CacheDuration == nil || resp.CacheDuration.Duration != 0 {
			t.Errorf("exit %d, answer %s; want exit 0, no auth, cacheDuration 0s", rec.Code, rec.Response)
		}
	}
	if err := n.pullImage(n.emu.PublicImage(), authn.Anonymous); err != nil {
		t.Errorf("the public image does not pull anonymously: %v", err)
	}
	if err := n.pullImage(n.emu.PrivateImage(), authn.Anonymous); err == nil {
		t.Error("the private image pulls anonymously: this test proves nothing")
	}
}

// A matchImages wider than the served registries: the plugin runs for another registry's image
// and answers no credentials, which the kubelet keeps for an hour.
func TestKubeletForeignImage(t *testing.T) {
	n := newNode(t, emulator.Options{})
	n.login()
	cfg := n.config(nodeConfig)
	cfg.Providers[0].MatchImages = append(cfg.Providers[0].MatchImages, "*.example.com")
	k := n.kubelet(cfg)
	for i := 0; i < 2; i++ {
		if got := k.lookup("registry.example.com/acme/app:latest", podOf("apps", "web", "default")); len(got) != 0 {
			t.Fatalf("credentials for registry.example.com")
		}
	}
	execs := k.execs()
	if len(execs) != 1 {
		t.Fatalf("the plugin ran %d times; want once (the empty answer is cached)", len(execs))
	}
	resp := execs[0].response(t)
	if resp.Auth != nil || resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType || resp.CacheDuration == nil || resp.CacheDuration.Duration != time.Hour {
		t.Errorf("answer %s; want no auth, Registry, 1h", execs[0].Response)
	}
	// The served registry still gets the session's credentials.
	if got := k.lookup(n.emu.PrivateImage(), podOf("apps", "web", "default")); len(got) != 1 || n.pull(got[0].Username, got[0].Password) != nil {
		t.Fatal("no working credentials for the served registry")
	}
}

// With the issuer's clock 30 minutes ahead of ours, a credential's exp is 30 minutes further
// off by our clock than it is. The kubelet must still be told to keep each answer for less than
// the credential lives, judged by the issuer's clock, for every source.
func TestKubeletIssuerClockAhead(t *testing.T) {
	for _, source := range sources {
		t.Run(source.name, func(t *testing.T) {
			n := newNode(t, emulator.Options{Clock: emulator.NewClock(time.Now().Add(30 * time.Minute)), TokenTTL: 10 * time.Minute})
			cfg := n.config(nodeConfig)
			source.setup(n, cfg)
			k := n.kubelet(cfg)
			got := k.lookup(n.emu.PrivateImage(), podOf("apps", "web", "default"))
			if len(got) != 1 {
				t.Fatalf("%d credentials\nits log:\n%s", len(got), k.log)
			}
			checkCacheDuration(t, n, k.lastExec(), got[0])
			if err := n.pull(got[0].Username, got[0].Password); err != nil {
				t.Fatalf("the kubelet's credentials do not pull: %v", err)
			}
		})
	}
}

// A Chainguard token that has aged since it was minted: the kubelet is told to keep it only
// until `get` would stop serving it (min(15 minutes, half its lifetime) before it expires),
// not for half of what remains, which for an aged token runs past that point. A short
// lifetime keeps the wait short.
func TestKubeletCacheEndsWhileGetServes(t *testing.T) {
	const life, age = 150 * time.Second, 12 * time.Second
	n := newNode(t, emulator.Options{TokenTTL: life})
	n.login()
	time.Sleep(age) // the session's token ages; nothing asserts on time
	k := n.kubelet(n.config(nodeConfig))
	got := k.lookup(n.emu.PrivateImage(), podOf("apps", "web", "default"))
	if len(got) != 1 {
		t.Fatalf("%d credentials\nits log:\n%s", len(got), k.log)
	}
	if tok := claims(t, got[0].Password); time.Since(tok.IssuedAt) < age {
		t.Fatalf("the session's token was minted %v ago; the test needs an aged one", time.Since(tok.IssuedAt))
	}
	checkCacheDuration(t, n, k.lastExec(), got[0])
}
