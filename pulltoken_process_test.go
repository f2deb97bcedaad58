package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
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
