package token

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewWorkloadNilWithoutIdentity(t *testing.T) {
	if w := NewWorkload(sessDeps("http://127.0.0.1:1")); w != nil {
		t.Fatal("a workload without CGR_IDENTITY")
	}
}

func TestWorkloadTokenFileRotates(t *testing.T) {
	v := newSessEnv(t, 0)
	const sub = "system:serviceaccount:ci:builder"
	id := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), sub, "")
	path := filepath.Join(t.TempDir(), "token")
	write := func() string {
		tok := v.e.MintOIDCToken(sub, v.d.Settings.IssuerHost(), 10*time.Minute)
		if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	oidc := write()
	v.d.Settings.Identity, v.d.Settings.IdentityToken = id, path
	w := NewWorkload(v.d)

	first, err := w.Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.Subject != id || !first.HasAudience("cgr.dev") {
		t.Errorf("sub %s aud %v", first.Subject, first.Audience)
	}
	// Cached while fresh, in this process and the next.
	if tok, err := NewWorkload(v.d).Token(v.ctx, ""); err != nil || tok.Raw != first.Raw {
		t.Fatalf("second call: %v", err)
	}
	if n := v.e.Count("sts/exchange"); n != 1 {
		t.Fatalf("exchanges = %d, want 1", n)
	}
	// Time passes: the file's token expired and was rotated; the file is read again.
	v.e.Clock().Advance(56 * time.Minute)
	write()
	second, err := w.Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if second.Raw == first.Raw || v.e.Count("sts/exchange") != 2 {
		t.Fatalf("not re-exchanged (%d exchanges)", v.e.Count("sts/exchange"))
	}
	// Not rotated this time: the stale file's token is rejected, with a line that says so.
	v.e.Clock().Advance(56 * time.Minute)
	_, err = w.Token(v.ctx, "")
	wantFixable(t, err, id)
	if strings.Contains(err.Error()+v.stderr.String(), oidc) {
		t.Fatal("the OIDC token shows")
	}
}

func TestWorkloadSingleFlight(t *testing.T) {
	v := newSessEnv(t, 0)
	const sub = "wl"
	id := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), sub, "")
	v.d.Settings.Identity = id
	v.d.Settings.IdentityToken = v.e.MintOIDCToken(sub, v.d.Settings.IssuerHost(), time.Hour)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = NewWorkload(v.d).Token(v.ctx, "")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := v.e.Count("sts/exchange"); n != 1 {
		t.Fatalf("exchanges = %d, want 1", n)
	}
}

func TestWorkloadGitHubActions(t *testing.T) {
	v := newSessEnv(t, 0)
	const sub = "repo:acme/app:ref:refs/heads/main"
	id := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), sub, "")
	var gotAuth, gotAud, gotVersion string
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		gotAud = r.URL.Query().Get("audience")
		gotVersion = r.URL.Query().Get("api-version")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"count":1,"value":%q}`, v.e.MintOIDCToken(sub, gotAud, 5*time.Minute))
	}))
	defer gh.Close()
	v.d.Settings.Identity = id
	v.d.Settings.ActionsTokenURL = gh.URL + "/token?api-version=2.0"
	v.d.Settings.ActionsTokenToken = "GH-REQUEST-TOKEN"
	tok, err := NewWorkload(v.d).Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != id {
		t.Errorf("sub %s", tok.Subject)
	}
	if gotAuth != "Bearer GH-REQUEST-TOKEN" || gotAud != v.d.Settings.IssuerHost() || gotVersion != "2.0" {
		t.Errorf("auth ok %v, audience %q, api-version %q", gotAuth == "Bearer GH-REQUEST-TOKEN", gotAud, gotVersion)
	}
	if strings.Contains(v.stderr.String(), "GH-REQUEST-TOKEN") {
		t.Fatal("request token on stderr")
	}
}

func TestWorkloadErrors(t *testing.T) {
	v := newSessEnv(t, 0)
	const sub = "wl"
	id := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), sub, "")

	t.Run("identity not found names CGR_IDENTITY", func(t *testing.T) {
		d := v.d
		d.Settings.Identity = v.e.Org().ID + "/0123456789abcdef"
		d.Settings.IdentityToken = v.e.MintOIDCToken(sub, d.Settings.IssuerHost(), time.Hour)
		_, err := NewWorkload(d).Token(v.ctx, "")
		wantFixable(t, err, "CGR_IDENTITY", "not found")
	})
	t.Run("deleted identity", func(t *testing.T) {
		other := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), sub, "")
		v.e.DeleteIdentity(other)
		d := v.d
		d.Settings.Identity = other
		d.Settings.IdentityToken = v.e.MintOIDCToken(sub, d.Settings.IssuerHost(), time.Hour)
		_, err := NewWorkload(d).Token(v.ctx, "")
		wantFixable(t, err, "CGR_IDENTITY", "not found")
	})
	t.Run("claim mismatch is explained", func(t *testing.T) {
		d := v.d
		d.Settings.Identity = id
		d.Settings.IdentityToken = v.e.MintOIDCToken("someone-else", d.Settings.IssuerHost(), time.Hour)
		_, err := NewWorkload(d).Token(v.ctx, "")
		wantFixable(t, err, "do not match", "sub=someone-else")
	})
	t.Run("no token at all", func(t *testing.T) {
		d := v.d
		d.Settings.Identity = id
		_, err := NewWorkload(d).Token(v.ctx, "")
		wantFixable(t, err, "CGR_IDENTITY_TOKEN")
	})
	t.Run("missing token file", func(t *testing.T) {
		d := v.d
		d.Settings.Identity = id
		d.Settings.IdentityToken = filepath.Join(t.TempDir(), "nope")
		_, err := NewWorkload(d).Token(v.ctx, "")
		wantFixable(t, err, "identity token file")
	})
	t.Run("GitHub Actions refuses", func(t *testing.T) {
		gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"message":"no"}`)
		}))
		defer gh.Close()
		d := v.d
		d.Settings.Identity = id
		d.Settings.ActionsTokenURL = gh.URL + "/?x=1"
		_, err := NewWorkload(d).Token(v.ctx, "")
		wantFixable(t, err, "id-token: write")
	})
}

func TestWorkloadWithoutStore(t *testing.T) {
	v := newSessEnv(t, 0)
	id := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), "wl", "")
	d := v.d
	d.Store = nil
	d.Settings.Identity = id
	d.Settings.IdentityToken = v.e.MintOIDCToken("wl", d.Settings.IssuerHost(), time.Hour)
	if _, err := NewWorkload(d).Token(v.ctx, ""); err != nil {
		t.Fatal(err)
	}
}
