package kubelet

import (
	"strings"
	"testing"

	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/internal/kube"
)

// saWorld is a node running the documented service-account-token config, with the emulator
// as the cluster's OIDC issuer and an assumable identity for apps/web whose claim match is
// that issuer, system:serviceaccount:apps:web and the config's audience.
type saWorld struct {
	*node
	k        *kubelet
	audience string
	webID    string
}

func newSAWorld(t *testing.T, unannotated string) *saWorld {
	t.Helper()
	n := newNode(t, emulator.Options{})
	cfg := n.config(serviceAccountConfig)
	p := &cfg.Providers[0]
	if unannotated != "" {
		replaced := false
		for i, a := range p.Args {
			if strings.HasPrefix(a, "--unannotated=") {
				p.Args[i], replaced = "--unannotated="+unannotated, true
			}
		}
		if !replaced {
			t.Fatalf("the documented config has no --unannotated argument: %q", p.Args)
		}
	}
	w := &saWorld{node: n, audience: p.TokenAttributes.ServiceAccountTokenAudience}
	w.webID = n.emu.AddAssumableIdentity(n.emu.Org(), n.emu.OIDCIssuerURL(), "system:serviceaccount:apps:web", w.audience)
	w.k = n.kubelet(cfg)
	w.k.setServiceAccount(serviceAccount{Namespace: "apps", Name: "web", UID: "uid-sa-web",
		Annotations: map[string]string{kube.AnnotationServiceAccountIdentity: w.webID, "unrelated": "x"}})
	w.k.setServiceAccount(serviceAccount{Namespace: "apps", Name: "plain", UID: "uid-sa-plain"})
	return w
}

// A pod whose service account names an identity pulls as that identity: the kubelet sends the
// plugin the account's token (for the config's audience, bound to the pod) and the annotation,
// the plugin exchanges the token at the STS and answers with a Chainguard token of the
// identity, and the kubelet keeps that answer for that service account only.
func TestKubeletServiceAccountIdentity(t *testing.T) {
	w := newSAWorld(t, "")
	got := w.k.lookup(w.emu.PrivateImage(), podOf("apps", "web-1", "web"))
	if len(got) != 1 {
		t.Fatalf("%d credentials for apps/web; want 1\nthe kubelet's log:\n%s", len(got), w.k.log)
	}
	if got[0].Username != "_token" || got[0].ServiceAccount != "apps/web" {
		t.Errorf("credential %q for service account %q; want _token for apps/web", got[0].Username, got[0].ServiceAccount)
	}
	if sub := claims(t, got[0].Password).Subject; sub != w.webID {
		t.Errorf("the Chainguard token's subject is %s; want the identity %s", sub, w.webID)
	}
	if err := w.pull(got[0].Username, got[0].Password); err != nil {
		t.Fatalf("the identity's credentials do not pull %s: %v", w.emu.PrivateImage(), err)
	}

	if len(w.k.tokenRequests) != 1 {
		t.Fatalf("%d token requests; want 1", len(w.k.tokenRequests))
	}
	tr := w.k.tokenRequests[0]
	if tr.Namespace != "apps" || tr.Name != "web" || len(tr.Audiences) != 1 || tr.Audiences[0] != w.audience || tr.BoundPod != "web-1" {
		t.Errorf("token request %s/%s for %q bound to %q; want apps/web for %q bound to web-1", tr.Namespace, tr.Name, tr.Audiences, tr.BoundPod, w.audience)
	}
	rec := w.k.lastExec()
	if rec.Code != 0 {
		t.Fatalf("the plugin failed: %s", rec.Stderr)
	}
	saTok := claims(t, rec.Request.ServiceAccountToken)
	if saTok.Subject != "system:serviceaccount:apps:web" || saTok.Issuer != w.emu.OIDCIssuerURL() {
		t.Errorf("the kubelet sent a token of %s from %s", saTok.Subject, saTok.Issuer)
	}
	// Only the annotation the config lists is sent.
	if a := rec.Request.ServiceAccountAnnotations; len(a) != 1 || a[kube.AnnotationServiceAccountIdentity] != w.webID {
		t.Errorf("the kubelet sent the annotations %v", a)
	}
	resp := rec.response(t)
	if resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType {
		t.Errorf("cacheKeyType %q", resp.CacheKeyType)
	}
	checkCacheDuration(t, w.node, rec, got[0])
	noJWTIn(t, "the plugin's stderr", rec.Stderr)

	// Another pod of the same service account, another image of the registry: the kubelet's
	// cache for apps/web answers (it still asks for a token: the key holds the account's UID).
	for _, image := range []string{w.emu.PrivateImage(), w.privateImage2()} {
		again := w.k.lookup(image, podOf("apps", "web-2", "web"))
		if len(again) != 1 || again[0] != got[0] {
			t.Errorf("%s for another pod of apps/web: not the cached credential", image)
		}
	}
	if n := len(w.k.execs()); n != 1 {
		t.Errorf("the plugin ran %d times for one service account within cacheDuration; want once", n)
	}
	noJWTIn(t, "the kubelet's log", w.k.log.String())
}

// Another service account naming the same identity, whose subject the claim match does not
// admit: the kubelet's cache for apps/web is not used for it, the STS refuses its token, and the
// plugin exits 1 with one line that says so. A deleted identity: one line naming it.
func TestKubeletServiceAccountRefused(t *testing.T) {
	w := newSAWorld(t, "")
	if got := w.k.lookup(w.emu.PrivateImage(), podOf("apps", "web-1", "web")); len(got) != 1 {
		t.Fatalf("apps/web: %d credentials", len(got))
	}
	goneID := w.emu.AddAssumableIdentity(w.emu.Org(), w.emu.OIDCIssuerURL(), "system:serviceaccount:apps:gone", w.audience)
	w.emu.DeleteIdentity(goneID)
	for _, c := range []struct {
		account, identity string
		want              []string
	}{
		{"other", w.webID, []string{"refused", "sub=system:serviceaccount:apps:other", "do not match", "chainctl iam identities create"}},
		{"gone", goneID, []string{"not found", goneID, "apps/gone", "kubectl annotate serviceaccount"}},
	} {
		t.Run(c.account, func(t *testing.T) {
			w.k.setServiceAccount(serviceAccount{Namespace: "apps", Name: c.account, UID: "uid-sa-" + c.account,
				Annotations: map[string]string{kube.AnnotationServiceAccountIdentity: c.identity}})
			before := len(w.k.execs())
			if got := w.k.lookup(w.emu.PrivateImage(), podOf("apps", c.account+"-1", c.account)); len(got) != 0 {
				t.Fatalf("apps/%s got credentials", c.account)
			}
			execs := w.k.execs()
			if len(execs) != before+1 {
				t.Fatalf("the plugin ran %d times for apps/%s; want once (apps/web's cache is not its)", len(execs)-before, c.account)
			}
			rec := execs[len(execs)-1]
			if rec.Code != 1 || len(rec.Response) != 0 {
				t.Errorf("exit %d, stdout %d bytes; want exit 1 and nothing", rec.Code, len(rec.Response))
			}
			line := oneLine(t, "the plugin's stderr", rec.Stderr)
			for _, want := range c.want {
				if !strings.Contains(line, want) {
					t.Errorf("stderr %q does not say %q", line, want)
				}
			}
			noJWTIn(t, "the plugin's stderr", rec.Stderr)
			if !w.k.logged(line) {
				t.Errorf("the kubelet's log does not carry the plugin's line %q:\n%s", line, w.k.log)
			}
		})
	}
	noJWTIn(t, "the kubelet's log", w.k.log.String())
}

// A service account without the annotation, with --unannotated=node (the documented default):
// the node's own credential, or none while the node has none. A pod without a service account
// (requireServiceAccount: false) is served the node's credential and sends no token.
func TestKubeletServiceAccountUnannotatedNode(t *testing.T) {
	w := newSAWorld(t, "")
	if got := w.k.lookup(w.emu.PrivateImage(), podOf("apps", "plain-1", "plain")); len(got) != 0 {
		t.Fatalf("credentials for apps/plain on a node with none")
	}
	if rec := w.k.lastExec(); rec.Code != 0 || rec.Request.ServiceAccountToken == "" || len(rec.Request.ServiceAccountAnnotations) != 0 {
		t.Fatalf("exit %d, token sent %v, annotations %v", rec.Code, rec.Request.ServiceAccountToken != "", rec.Request.ServiceAccountAnnotations)
	}
	w.login() // the node gets a credential of its own
	user := w.emu.User().ID
	for _, p := range []pod{podOf("apps", "plain-2", "plain"), podOf("kube-system", "static-1", "")} {
		got := w.k.lookup(w.emu.PrivateImage(), p)
		if len(got) != 1 {
			t.Fatalf("pod %s/%s (service account %q): %d credentials; want the node's\n%s", p.Namespace, p.Name, p.ServiceAccount, len(got), w.k.log)
		}
		if sub := claims(t, got[0].Password).Subject; sub != user {
			t.Errorf("pod %s/%s: a token of %s; want the node's session (%s)", p.Namespace, p.Name, sub, user)
		}
		if err := w.pull(got[0].Username, got[0].Password); err != nil {
			t.Fatalf("the node's credentials do not pull: %v", err)
		}
	}
	if rec := w.k.lastExec(); rec.Request.ServiceAccountToken != "" {
		t.Error("a token was sent for a pod without a service account")
	}
	// The annotated account still pulls as its identity.
	if got := w.k.lookup(w.emu.PrivateImage(), podOf("apps", "web-1", "web")); len(got) != 1 || claims(t, got[0].Password).Subject != w.webID {
		t.Fatal("apps/web does not pull as its identity")
	}
}

// --unannotated=none: a service account without the annotation gets nothing even though the
// node has a credential, cached for that account; an annotated one still pulls as its identity.
func TestKubeletServiceAccountUnannotatedNone(t *testing.T) {
	w := newSAWorld(t, kube.UnannotatedNone)
	w.login()
	for i := 0; i < 2; i++ {
		if got := w.k.lookup(w.emu.PrivateImage(), podOf("apps", "plain-1", "plain")); len(got) != 0 {
			t.Fatalf("credentials for apps/plain with --unannotated=none")
		}
	}
	execs := w.k.execs()
	if len(execs) != 1 {
		t.Fatalf("the plugin ran %d times; want once (the empty answer is kept for apps/plain)", len(execs))
	}
	if rec := execs[0]; rec.Code != 0 || rec.response(t).Auth != nil || strings.Join(rec.Args, " ") != "kubelet-provider --unannotated=none" {
		t.Errorf("exit %d with args %q, answer %s", rec.Code, rec.Args, rec.Response)
	}
	got := w.k.lookup(w.emu.PrivateImage(), podOf("apps", "web-1", "web"))
	if len(got) != 1 || claims(t, got[0].Password).Subject != w.webID {
		t.Fatal("apps/web does not pull as its identity")
	}
	if err := w.pull(got[0].Username, got[0].Password); err != nil {
		t.Fatal(err)
	}
}
