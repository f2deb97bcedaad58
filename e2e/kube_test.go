package e2e

// Kubernetes through the built binary (the kubelet's credential provider exchange, through the
// kubelet's own plugin code, and kube-secret's manifest piped into kubectl) is tested in the
// nested module e2e/kubelet, which keeps k8s.io/* out of the product's go.mod.

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

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
