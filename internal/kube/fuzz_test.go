package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/kube"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// FuzzProviderServe: whatever the kubelet (or anything else) writes on stdin, the plugin
// answers with an error or with a response of the documented JSON, in the request's version,
// carrying credentials only for the served host the image names and never for another.
func FuzzProviderServe(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"cgr.dev/acme/app:latest"}`))
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderRequest","image":"CGR.DEV/x","serviceAccountToken":"t"}`))
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"127.0.0.1:5000/a"}`))
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"cgr.dev.evil.com/cgr.dev/app"}`))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &kube.Provider{
		Hosts: []string{"cgr.dev", "127.0.0.1:5000"},
		Now:   func() time.Time { return now },
		Get: func(_ context.Context, host string) (kube.Credential, error) {
			switch host {
			case "cgr.dev":
				return kube.Credential{Username: "_token", Password: "fuzz-secret", Expiry: now.Add(time.Hour)}, nil
			case "127.0.0.1:5000":
				return kube.Credential{}, fmt.Errorf("nothing stored: %w", token.ErrNoCredential)
			}
			return kube.Credential{}, fmt.Errorf("Get called for %q, a host we do not serve", host)
		},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if err := p.Serve(context.Background(), bytes.NewReader(in), &out); err != nil {
			if out.Len() != 0 {
				t.Fatalf("an error (%v) and an answer", err)
			}
			if strings.Contains(err.Error(), "a host we do not serve") {
				t.Fatal(err)
			}
			return
		}
		var req kube.Request
		if err := json.NewDecoder(bytes.NewReader(in)).Decode(&req); err != nil {
			t.Fatalf("answered a request that does not decode: %v", err)
		}
		var resp kube.Response
		dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("response is not the documented JSON: %v\n%s", err, out.Bytes())
		}
		if resp.APIVersion != req.APIVersion || resp.Kind != "CredentialProviderResponse" || resp.CacheKeyType != "Registry" {
			t.Fatalf("response type %s %s cache key %s for a %s request", resp.APIVersion, resp.Kind, resp.CacheKeyType, req.APIVersion)
		}
		if resp.CacheDuration == nil {
			t.Fatal("no cacheDuration")
		}
		if d, err := time.ParseDuration(*resp.CacheDuration); err != nil || d < 0 || d > time.Hour {
			t.Fatalf("cacheDuration %q", *resp.CacheDuration)
		}
		host := kube.ImageHost(req.Image)
		for h, a := range resp.Auth {
			if h != "cgr.dev" || host != "cgr.dev" || a.Password != "fuzz-secret" {
				t.Fatalf("credentials for %q given for image %q (host %q)", h, req.Image, host)
			}
		}
		if host == "cgr.dev" && len(resp.Auth) != 1 {
			t.Fatalf("no credentials for the served image %q", req.Image)
		}
	})
}

// FuzzImageHost: the registry host of any image reference is one lower-case path element.
func FuzzImageHost(f *testing.F) {
	for _, s := range []string{"cgr.dev/acme/app", "nginx", "localhost/x", "Host:5000/a/b", " cgr.dev/x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) {
		h := kube.ImageHost(image)
		if h == "" || strings.Contains(h, "/") || h != strings.ToLower(h) {
			t.Fatalf("ImageHost(%q) = %q", image, h)
		}
	})
}
