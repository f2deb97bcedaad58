package emulator

import (
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func pull(t *testing.T, ref string, auth authn.Authenticator) error {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(auth))
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		rc.Close()
	}
	return nil
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

func TestAnonymousPublicPull(t *testing.T) {
	e := start(t, Options{})
	if err := pull(t, e.PublicImage(), authn.Anonymous); err != nil {
		t.Fatalf("anonymous pull of the public image: %v", err)
	}
	if e.Count("registry/token") == 0 || e.Count("registry/v2") == 0 {
		t.Errorf("counters not incremented: token=%d v2=%d", e.Count("registry/token"), e.Count("registry/v2"))
	}
	err := pull(t, e.PrivateImage(), authn.Anonymous)
	if got := statusOf(err); got != http.StatusUnauthorized {
		t.Errorf("anonymous pull of the private image: status %d (%v), want 401", got, err)
	}
}

func TestBrowserLoginThenPrivatePull(t *testing.T) {
	e := start(t, Options{})
	q := browserLogin(t, e)
	tok, rt := q.Get("token"), q.Get("refresh_token")
	if tok == "" || rt == "" || q.Get("error") != "" {
		t.Fatalf("callback query lacks token/refresh_token or has error: keys %v", keys(q))
	}
	if err := pull(t, e.PrivateImage(), &authn.Basic{Username: "_token", Password: tok}); err != nil {
		t.Fatalf("_token pull of the private image: %v", err)
	}
	if e.Count("oauth") != 1 {
		t.Errorf("oauth count = %d", e.Count("oauth"))
	}
}

func keys(q map[string][]string) []string {
	var out []string
	for k := range q {
		out = append(out, k)
	}
	return out
}
