package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// A 30 s pull token, saved, is renewed by `get` once a third of its life is left, while
// crane pulls with it every second; every pull succeeds, the old identity is deleted, and
// list/delete see the replacement.
func TestPullTokenRenewalThroughBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s of pulls; run without -short")
	}
	const ttl = 30 * time.Second
	w := newWorld(t, emulator.Options{})
	w.login()
	host := w.emu.RegistryHost()
	crane := need(t, "crane")
	created := time.Now()
	first, _ := w.pullToken("--ttl", ttl.String(), "--save")

	seen := []string{first}
	for time.Since(created) < ttl-2*time.Second {
		at := time.Since(created)
		user, secret, r := w.get(host)
		if r.code != 0 {
			t.Fatalf("get at %s: exit %d: %s", at.Round(time.Second), r.code, r.stdout)
		}
		if user == "_token" {
			t.Fatalf("get at %s answered with the session, not the saved pull token", at.Round(time.Second))
		}
		if user != seen[len(seen)-1] {
			// Renewal happens only once less than a third of the lifetime is left.
			if at < ttl*2/3-time.Second {
				t.Fatalf("renewed at %s, before two thirds of a %s lifetime", at.Round(time.Second), ttl)
			}
			seen = append(seen, user)
		}
		noSecretIn(t, "get's stderr", r.stderr, secret)
		if r := w.run("", crane, "manifest", "--insecure", w.emu.PrivateImage()); r.code != 0 {
			t.Fatalf("crane pull at %s: exit %d: %s", at.Round(time.Second), r.code, r.stderr)
		}
		time.Sleep(time.Second)
	}
	if len(seen) != 2 {
		t.Fatalf("identities served over the token's life: %d; want the original and one replacement", len(seen))
	}
	renewed := seen[1]
	if w.emu.Identity(first) {
		t.Errorf("the replaced identity %s still exists", first)
	}
	if n := w.emu.Count("api/identities.create"); n != 2 {
		t.Errorf("%d identities created; want 2 (the token and one replacement)", n)
	}

	r := w.helper("", "pull-token", "list", "--json")
	var listed []struct {
		ID        string   `json:"identity_id"`
		StoredFor []string `json:"stored_for"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &listed) != nil {
		t.Fatalf("pull-token list --json: exit %d: %s", r.code, r.stderr)
	}
	found := false
	for _, l := range listed {
		if l.ID == first {
			t.Errorf("list still shows the replaced identity")
		}
		if l.ID == renewed {
			found = len(l.StoredFor) > 0
		}
	}
	if !found {
		t.Fatalf("list does not show the replacement as stored: %s", r.stdout)
	}
	if r := w.helper("", "pull-token", "delete", renewed); r.code != 0 {
		t.Fatalf("pull-token delete: exit %d: %s", r.code, r.stderr)
	}
	if w.emu.Identity(renewed) {
		t.Fatal("delete left the identity in place")
	}
	// With the pull token gone, get falls back to the login session.
	if user, _, r := w.get(host); r.code != 0 || user != "_token" {
		t.Fatalf("get after delete: exit %d, user %q", r.code, user)
	}
	if r := w.helper("", "pull-token", "delete", strings.Repeat("0", 40)+"/0000000000000000"); r.code == 0 {
		t.Fatal("deleting an unknown identity succeeded")
	}
}

// A stored pull token due for renewal, and 20 get PROCESSES at once (parallel pulls,
// BuildKit): the cross-process lock lets exactly one of them create the replacement; every
// one answers with it, and the replaced identity is deleted.
func TestPullTokenRenewalAcrossProcesses(t *testing.T) {
	const gets = 20
	w := newWorld(t, emulator.Options{})
	host := w.emu.RegistryHost()
	w.login()
	old, oldTok := w.pullToken("--ttl", "1h")
	// 45 minutes pass by the issuer's clock, and a new login learns that clock. Stored now (as
	// docker login stores it), the token has 15 of its 60 minutes left: less than a third.
	w.emu.Clock().Advance(45 * time.Minute)
	if r := w.helper("", "logout"); r.code != 0 {
		t.Fatalf("logout: exit %d: %s", r.code, r.stderr)
	}
	w.login()
	cred := fmt.Sprintf(`{"ServerURL":%q,"Username":%q,"Secret":%q}`, host, old, oldTok)
	if r := w.helper(cred, "store"); r.code != 0 {
		noSecretIn(t, "store's output", r.stdout+r.stderr, oldTok)
		t.Fatalf("store: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}

	w.emu.ResetCounts()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := w.environ()
	// A start line: every get waits for the file go to appear, then execs the helper, so
	// the 20 race for real instead of being started one after the other.
	goFile := filepath.Join(t.TempDir(), "go")
	const wait = `while [ ! -e "$0" ]; do sleep 0.01; done; exec "$1" get`
	cmds := make([]*exec.Cmd, gets)
	outs, errs := make([]bytes.Buffer, gets), make([]bytes.Buffer, gets)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, "sh", "-c", wait, goFile, helperBin)
		cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, strings.NewReader(host), &outs[i], &errs[i]
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting get %d: %v", i, err)
		}
		cmds[i] = cmd
	}
	start := time.Now()
	w.write(goFile, "")
	waitErrs := make([]error, gets)
	for i, cmd := range cmds {
		waitErrs[i] = cmd.Wait()
	}
	t.Logf("%d concurrent gets took %s", gets, time.Since(start).Round(time.Millisecond))

	var renewed, secret string
	for i := range cmds {
		noSecretIn(t, "get's stderr", errs[i].String(), oldTok, secret)
		if waitErrs[i] != nil {
			t.Fatalf("get %d: %v: %s", i, waitErrs[i], outs[i].String())
		}
		var c struct{ ServerURL, Username, Secret string }
		if err := json.Unmarshal(outs[i].Bytes(), &c); err != nil || c.ServerURL != host {
			t.Fatalf("get %d: not the protocol JSON for %s (%v)", i, host, err)
		}
		noSecretIn(t, "get's stderr", errs[i].String(), c.Secret)
		if i == 0 {
			renewed, secret = c.Username, c.Secret
		}
		switch {
		case c.Username == old:
			t.Fatalf("get %d served the pull token that was due for renewal", i)
		case c.Username != renewed || c.Secret != secret:
			t.Fatalf("get %d answered identity %s; get 0 answered %s: more than one renewal", i, c.Username, renewed)
		}
	}
	if n := w.emu.Count("api/identities.create"); n != 1 {
		t.Errorf("%d identities created by %d concurrent gets; want exactly 1", n, gets)
	}
	if !token.ValidIdentityID(renewed) || !strings.HasPrefix(renewed, strings.Split(old, "/")[0]+"/") {
		t.Errorf("renewed identity %q is not a pull token of the old one's org", renewed)
	}
	if w.emu.Identity(old) {
		t.Errorf("the replaced identity %s still exists", old)
	}
	if !w.emu.Identity(renewed) {
		t.Fatalf("the served identity %s does not exist", renewed)
	}
	// A valid pull-token credential: the pull-token JWT, good for about a fresh hour, and the
	// registry lets it pull; the replaced one no longer can.
	jwt, err := token.Parse(secret)
	if err != nil || jwt.Issuer != token.PullTokenIssuer || jwt.Expiry.Sub(w.emu.Clock().Now()) < 50*time.Minute {
		t.Fatalf("the served secret is not a fresh 1h pull-token JWT (%v)", err)
	}
	if err := w.pullWith(renewed, secret); err != nil {
		t.Fatalf("pull with the renewed token: %v", err)
	}
	if err := w.pullWith(old, oldTok); err == nil {
		t.Fatal("the replaced pull token still pulls")
	}
}

// Logged out, with only a saved pull token, real clients pull a private image through the
// helper: skopeo (auth.json credHelpers) and the Docker Engine (config.json credHelpers).
func TestSavedPullTokenPullsWithoutSession(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	host := w.emu.RegistryHost()
	img := w.emu.PrivateImage()
	w.login()
	id, tok := w.pullToken("--save")
	if r := w.helper("", "logout"); r.code != 0 {
		t.Fatalf("logout: exit %d: %s", r.code, r.stderr)
	}
	r := w.helper("", "status", "--json")
	var st struct {
		LoggedIn   bool `json:"logged_in"`
		PullTokens []struct {
			Host, Identity string
		} `json:"pull_tokens"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("status --json: exit %d: %s", r.code, r.stderr)
	}
	if st.LoggedIn || len(st.PullTokens) != 1 || st.PullTokens[0].Identity != id {
		t.Fatalf("after logout: logged in %v, pull tokens %+v; want only the saved one", st.LoggedIn, st.PullTokens)
	}
	if user, secret, r := w.get(host); r.code != 0 || user != id || secret != tok {
		t.Fatalf("get: exit %d, user %q; want the saved pull token %s", r.code, user, id)
	}

	t.Run("skopeo", func(t *testing.T) {
		need(t, "skopeo")
		r := w.run("", "skopeo", "inspect", "--tls-verify=false", "--authfile", w.env["REGISTRY_AUTH_FILE"], "docker://"+img)
		noSecretIn(t, "skopeo's output", r.stdout+r.stderr, tok)
		if r.code != 0 || !strings.Contains(r.stdout, `"Digest"`) {
			t.Fatalf("skopeo inspect: exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("docker", func(t *testing.T) {
		need(t, "docker")
		dockerEngine(t)
		t.Cleanup(func() { w.run("", "docker", "rmi", "-f", img) })
		r := w.run("", "docker", "pull", img)
		noSecretIn(t, "docker's output", r.stdout+r.stderr, tok)
		if r.code != 0 {
			t.Fatalf("docker pull %s: exit %d: %s", img, r.code, r.stderr)
		}
	})
}

// A saved pull token whose identity was deleted at the issuer: the helper learns it in the
// background (at most an hour after the last check; at once for a token never checked), and
// from then on get answers one line naming the cause and the fix, which crane prints, instead
// of a token the registry refuses with a bare Forbidden.
func TestPullTokenDeletedIdentityNamedByGet(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	id, _ := w.pullToken("--save", "--name", "gone")
	if r := w.helper("", "logout"); r.code != 0 { // nothing can replace it now
		t.Fatalf("logout: %s", r.stderr)
	}
	w.emu.DeleteIdentity(id)
	host := w.emu.RegistryHost()
	deadline := time.Now().Add(10 * time.Second)
	var r result
	for {
		r = w.helper(host, "get") // the first get starts the check in the background
		if r.code != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	line := oneLine(t, "get with a deleted pull token identity", r, "no longer exists", id, "docker-credential-cgr login && docker-credential-cgr pull-token create --save")
	t.Logf("get: %s", line)
	crane := need(t, "crane")
	cr := w.run("", crane, "manifest", "--insecure", w.emu.PrivateImage())
	if cr.code == 0 || !strings.Contains(cr.stderr, "no longer exists") {
		t.Fatalf("crane with a deleted pull token: exit %d, stderr %q; want the helper's line", cr.code, cr.stderr)
	}
	if r := w.helper("", "status"); r.code != 1 || !strings.Contains(r.stdout, "no longer exists") {
		t.Errorf("status: exit %d, %q; want the same problem", r.code, r.stdout)
	}
}

// A pull token longer than the organization's plan allows: one line naming the cap and the
// flag, exit 1, and nothing created.
func TestPullTokenTTLAbovePlanCap(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	w.emu.SetOrgPlan(w.emu.Org(), "team")
	before := w.emu.Count("api/identities.create")
	r := w.helper("", "pull-token", "create", "--ttl", "720h")
	if r.code != 1 || !strings.Contains(r.stderr, "168h") || !strings.Contains(r.stderr, "--ttl 168h") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("pull-token create --ttl 720h on a Team plan: exit %d, stderr %q; want one line naming the 168h cap and the flag", r.code, r.stderr)
	}
	if w.emu.Count("api/identities.create") != before+1 || len(w.emu.Identities(w.emu.Org())) != 0 {
		t.Errorf("an identity was left behind by a refused create")
	}
	if r := w.helper("", "pull-token", "create", "--ttl", "168h", "--json"); r.code != 0 {
		t.Fatalf("--ttl 168h: exit %d: %s", r.code, r.stderr)
	}
}
