package kube_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/kube"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// saRequest is what the kubelet writes in service-account-token mode.
func saRequest(t *testing.T, image, saToken string, annotations map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(kube.Request{APIVersion: kube.Group + "/v1", Kind: "CredentialProviderRequest", Image: image,
		ServiceAccountToken: saToken, ServiceAccountAnnotations: annotations})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Which credential answers, by what the kubelet sends: the annotated identity (exchanged with
// the account's token), else the node's or none as --unannotated says; the node's for a pod
// without a service account; an annotation without a token is an error, never the node's.
func TestProviderServiceAccountChoice(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const id = "0123456789abcdef0123456789abcdef01234567/0123456789abcdef"
	type call struct{ host, token, identity string }
	for _, c := range []struct {
		name        string
		unannotated string
		saToken     string
		annotations map[string]string
		exchangeErr error
		wantUser    string // "" no credentials
		wantExch    *call
		wantErr     string
		wantCache   time.Duration
	}{
		{name: "annotated", saToken: "sa-token", annotations: map[string]string{kube.AnnotationServiceAccountIdentity: id},
			wantUser: "_token", wantExch: &call{"cgr.dev", "sa-token", id}, wantCache: 30 * time.Minute},
		{name: "annotated, --unannotated=none", unannotated: kube.UnannotatedNone, saToken: "sa-token", annotations: map[string]string{kube.AnnotationServiceAccountIdentity: " " + id + " "},
			wantUser: "_token", wantExch: &call{"cgr.dev", "sa-token", id}, wantCache: 30 * time.Minute},
		{name: "annotated, refused", saToken: "sa-token", annotations: map[string]string{kube.AnnotationServiceAccountIdentity: id},
			exchangeErr: &token.FixableError{Cause: "identity refused the service account's token"}, wantExch: &call{"cgr.dev", "sa-token", id}, wantErr: "refused"},
		{name: "unannotated, node", saToken: "sa-token", wantUser: "node-user", wantCache: time.Hour},
		{name: "unannotated, none", unannotated: kube.UnannotatedNone, saToken: "sa-token", annotations: map[string]string{"other": "x"}, wantCache: time.Hour},
		{name: "no service account", unannotated: kube.UnannotatedNone, wantUser: "node-user", wantCache: time.Hour},
		{name: "annotation without a token", annotations: map[string]string{kube.AnnotationServiceAccountIdentity: id}, wantErr: "tokenAttributes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var exch *call
			p := &kube.Provider{
				Hosts: []string{"cgr.dev"}, Unannotated: c.unannotated, Now: func() time.Time { return now },
				Get: func(context.Context, string) (kube.Credential, error) {
					return kube.Credential{Username: "node-user", Password: "node-secret", Expiry: now.Add(720 * time.Hour), Margin: 240 * time.Hour}, nil
				},
				Exchange: func(_ context.Context, host, saToken, identity string) (kube.Credential, error) {
					exch = &call{host, saToken, identity}
					if c.exchangeErr != nil {
						return kube.Credential{}, c.exchangeErr
					}
					return kube.Credential{Username: "_token", Password: "cg-token", Expiry: now.Add(time.Hour), Margin: 15 * time.Minute}, nil
				},
			}
			out, err := serve(t, p, saRequest(t, "cgr.dev/acme/app", c.saToken, c.annotations))
			if (exch == nil) != (c.wantExch == nil) || exch != nil && *exch != *c.wantExch {
				t.Errorf("exchange %+v; want %+v", exch, c.wantExch)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || len(out) != 0 {
					t.Fatalf("err %v, %d bytes out; want an error about %q and no answer", err, len(out), c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := response(t, out)
			if got := r.Auth["cgr.dev"].Username; got != c.wantUser || (c.wantUser == "") != (r.Auth == nil) {
				t.Errorf("answered %q (%d entries); want %q", got, len(r.Auth), c.wantUser)
			}
			if r.CacheKeyType != "Registry" || r.CacheDuration == nil || *r.CacheDuration != c.wantCache {
				t.Errorf("cacheKeyType %q, cacheDuration %v; want Registry, %v", r.CacheKeyType, r.CacheDuration, c.wantCache)
			}
		})
	}
	// Without an Exchanger an annotated account is an error, never the node's credential.
	p := &kube.Provider{Hosts: []string{"cgr.dev"}, Get: func(context.Context, string) (kube.Credential, error) {
		return kube.Credential{Username: "node-user", Password: "p", Expiry: now.Add(time.Hour)}, nil
	}}
	if _, err := serve(t, p, saRequest(t, "cgr.dev/acme/app", "sa-token", map[string]string{kube.AnnotationServiceAccountIdentity: id})); err == nil {
		t.Error("an annotated account was served without an Exchanger")
	}
}

// The exchange against the emulator's STS: the cluster's token for an identity whose claim
// match admits it pulls; a deleted identity and a subject the claim match does not admit give
// one line naming the service account, the identity and the cause, and no token.
func TestServiceAccountExchanger(t *testing.T) {
	f := newFixture(t)
	const aud = "issuer.enforce.dev"
	id := f.emu.AddAssumableIdentity(f.emu.Org(), f.emu.OIDCIssuerURL(), "system:serviceaccount:apps:web", aud)
	exchange := kube.ServiceAccountExchanger(f.d)
	host := f.emu.RegistryHost()

	web := f.emu.MintOIDCToken("system:serviceaccount:apps:web", aud, time.Hour)
	c, err := exchange(testCtx(t), host, web, id)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.Parse(c.Password)
	if err != nil || c.Username != "_token" || tok.Subject != id || !tok.HasAudience(f.d.Settings.Audience) {
		t.Fatalf("credential %q for %v (err %v); want _token of %s for %s", c.Username, tok, err, id, f.d.Settings.Audience)
	}
	if c.Margin != tok.FreshFor() || c.IssuerNow.IsZero() {
		t.Errorf("margin %v, issuer time %v", c.Margin, c.IssuerNow)
	}
	if err := f.pull(c.Username, c.Password); err != nil {
		t.Fatalf("the exchanged token does not pull: %v", err)
	}

	gone := f.emu.AddAssumableIdentity(f.emu.Org(), f.emu.OIDCIssuerURL(), "system:serviceaccount:apps:gone", aud)
	f.emu.DeleteIdentity(gone)
	for _, e := range []struct {
		name, saToken, identity string
		want                    []string
	}{
		{"deleted identity", f.emu.MintOIDCToken("system:serviceaccount:apps:gone", aud, time.Hour), gone,
			[]string{"identity " + gone, "service account apps/gone", "not found", "kubectl annotate serviceaccount --namespace apps gone"}},
		{"another subject", f.emu.MintOIDCToken("system:serviceaccount:apps:other", aud, time.Hour), id,
			[]string{"service account apps/other", "refused", "sub=system:serviceaccount:apps:other", "aud=" + aud, "--subject=system:serviceaccount:apps:other"}},
		{"another audience", f.emu.MintOIDCToken("system:serviceaccount:apps:web", "cgr.dev", time.Hour), id,
			[]string{"refused", "aud=cgr.dev"}},
	} {
		t.Run(e.name, func(t *testing.T) {
			_, err := exchange(testCtx(t), host, e.saToken, e.identity)
			var fe *token.FixableError
			if err == nil || !errors.As(err, &fe) {
				t.Fatalf("err %v; want a one-line FixableError", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || strings.Contains(msg, "eyJ") {
				t.Fatalf("not one line without a token: %q", msg)
			}
			for _, w := range e.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			if errors.Is(err, token.ErrNoCredential) {
				t.Error("a refusal unwraps to ErrNoCredential: the kubelet would be told nothing is configured")
			}
		})
	}
	// The kubelet's token is read for its service account only for messages; an unreadable one
	// still gets the STS's answer.
	if _, err := exchange(testCtx(t), host, "not-a-jwt", id); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("an unreadable token: %v", err)
	}
}
