package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

var userCodeRE = regexp.MustCompile(`enter the code: ([A-Z0-9-]+)`)

// headless starts `login --device-flow` (the RFC 8628 flow, where discovery names it; plain
// --headless is the issuer's headless code, PROTOCOL.md 4.1), waits for the user code on stderr, lets decide()
// approve or deny it at the emulator, and returns the login's result.
func (w *world) headless(t *testing.T, decide func(code string) error) (exit int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin, "login", "--device-flow")
	cmd.Env = w.environ()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	sc := bufio.NewScanner(pipe)
	decided := false
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if m := userCodeRE.FindStringSubmatch(line); m != nil && !decided {
			decided = true
			if err := decide(m[1]); err != nil {
				t.Errorf("deciding on the device code: %v", err)
			}
		}
	}
	err = cmd.Wait()
	if !decided {
		t.Fatalf("login --device-flow printed no user code:\n%s", all.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), all.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, all.String()
}

// The device flow through the binary: the code on stderr, approval, a stored session.
func TestHeadlessLoginThroughBinary(t *testing.T) {
	w := newWorld(t, emulator.Options{DeviceInterval: 100 * time.Millisecond, DeviceFlow: true})
	code, stderr := w.headless(t, w.emu.ApproveDevice)
	if code != 0 {
		t.Fatalf("login --device-flow: exit %d\n%s", code, stderr)
	}
	if user, _, r := w.get(w.emu.RegistryHost()); r.code != 0 || user != "_token" {
		t.Fatalf("get after headless login: exit %d %s", r.code, r.stdout)
	}
	// Denied at the issuer: login fails with the reason and stores nothing.
	w2 := newWorld(t, emulator.Options{DeviceInterval: 100 * time.Millisecond, DeviceFlow: true})
	code, stderr = w2.headless(t, w2.emu.DenyDevice)
	if code != 1 || !strings.Contains(stderr, "denied") {
		t.Fatalf("denied login: exit %d\n%s", code, stderr)
	}
	if _, _, r := w2.get(w2.emu.RegistryHost()); r.code != 1 || !strings.Contains(r.stdout, "credentials not found") {
		t.Fatalf("get after a denied login: exit %d %q", r.code, r.stdout)
	}
}

// What a user sees when the session cannot be made valid: one line, the cause, the fix.
func TestSessionFailuresThroughBinary(t *testing.T) {
	const ttl = 4 * time.Second
	cases := []struct {
		name  string
		fault func(e *emulator.Emulator)
		want  []string
	}{
		{"refresh token revoked", func(e *emulator.Emulator) { e.RevokeRefreshTokens() }, []string{"docker-credential-cgr login"}},
		{"session expired", func(e *emulator.Emulator) { e.Clock().Advance(31 * 24 * time.Hour) }, []string{"docker-credential-cgr login", "expire"}},
		{"issuer unavailable", func(e *emulator.Emulator) { e.SetFault(emulator.Fault{IssuerStatus: 503}) }, []string{"expire"}},
		{"issuer black-holed", func(e *emulator.Emulator) { e.SetFault(emulator.Fault{IssuerDown: true}) }, []string{"expire"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, emulator.Options{TokenTTL: ttl})
			w.login()
			host := w.emu.RegistryHost()
			_, secret, r := w.get(host)
			if r.code != 0 {
				t.Fatalf("get: %s", r.stdout)
			}
			time.Sleep(ttl + 200*time.Millisecond) // the cached token has expired
			c.fault(w.emu)
			_, _, r = w.get(host)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if r.code != 1 || len(lines) != 1 {
				t.Fatalf("get: exit %d, stdout %q; want one line and exit 1", r.code, r.stdout)
			}
			t.Logf("the user sees: %s", lines[0])
			for _, want := range c.want {
				if !strings.Contains(lines[0], want) {
					t.Errorf("the line %q does not say %q", lines[0], want)
				}
			}
			noSecretIn(t, "the answer", r.stdout+r.stderr, secret)
		})
	}
}

// Issuer down, but the cached token is still fresh: it is served without a network call.
func TestIssuerDownFreshTokenServed(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	host := w.emu.RegistryHost()
	_, first, _ := w.get(host)
	w.emu.SetFault(emulator.Fault{IssuerDown: true})
	if _, secret, r := w.get(host); r.code != 0 || secret != first {
		t.Fatalf("get with the issuer down and a fresh token: exit %d %q", r.code, r.stdout)
	}
}

// status after a plain browser login names the user, the org (learned at login), where the
// secrets are, the registries served, when the session and the cached token expire, and the
// saved pull token; --json carries the same.
func TestStatusAfterLogin(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	host := w.emu.RegistryHost()
	if _, _, r := w.get(host); r.code != 0 { // caches a registry token
		t.Fatalf("get: exit %d: %s", r.code, r.stdout)
	}
	id, _ := w.pullToken("--save", "--name", "status-test")
	r := w.helper("", "status", "--json")
	var st struct {
		Registries    []string `json:"registries"`
		LoggedIn      bool     `json:"logged_in"`
		Subject       string   `json:"subject"`
		Email         string   `json:"email"`
		Org           string   `json:"org"`
		Store         string   `json:"store"`
		RefreshExpiry string   `json:"refresh_expiry"`
		Tokens        []struct {
			Audience string    `json:"audience"`
			Expiry   time.Time `json:"expiry"`
		} `json:"tokens"`
		PullTokens []struct {
			Host, Identity, Name string
			Expiry               time.Time
		} `json:"pull_tokens"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("status --json: exit %d: %s", r.code, r.stderr)
	}
	u := w.emu.User()
	if !st.LoggedIn || st.Subject != u.ID || st.Email != u.Email || st.Org != w.emu.Org().Name || st.Store == "" || st.RefreshExpiry == "" {
		t.Fatalf("status --json = %+v; want %s, %s, org %s", st, u.ID, u.Email, w.emu.Org().Name)
	}
	if len(st.Registries) != 1 || st.Registries[0] != host {
		t.Errorf("registries %v, want [%s]", st.Registries, host)
	}
	now := w.emu.Clock().Now()
	cached := false
	for _, tk := range st.Tokens {
		if tk.Audience == emulator.Audience && tk.Expiry.After(now) {
			cached = true
		}
	}
	if !cached {
		t.Errorf("tokens %+v: no unexpired %s token listed after a get", st.Tokens, emulator.Audience)
	}
	if len(st.PullTokens) != 1 || st.PullTokens[0].Host != host || st.PullTokens[0].Identity != id || st.PullTokens[0].Name != "status-test" || !st.PullTokens[0].Expiry.After(now.Add(700*time.Hour)) {
		t.Errorf("pull_tokens %+v; want the saved token %s for %s, name status-test, expiring in about 720h", st.PullTokens, id, host)
	}
	noJWTIn(t, "status --json", r.stdout+r.stderr)
	r = w.helper("", "status")
	for _, want := range []string{w.emu.Org().Name, u.Email, host, id, "status-test", "Cached tokens:", "expires"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("status: exit %d, no %q in:\n%s", r.code, want, r.stdout)
		}
	}
	noJWTIn(t, "status", r.stdout+r.stderr)
}

// logout forgets the session; logout --all forgets every stored credential too (a saved pull
// token, a `_token` given to store); both are idempotent and never fail for want of a login.
func TestLogoutAndLogoutAll(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	host := w.emu.RegistryHost()
	if r := w.helper("", "logout"); r.code != 0 || !strings.Contains(r.stderr, "Not logged in") {
		t.Fatalf("logout when never logged in: exit %d, stderr %q", r.code, r.stderr)
	}
	w.login()
	w.pullToken("--save")
	if r := w.helper("", "logout"); r.code != 0 {
		t.Fatalf("logout: exit %d: %s", r.code, r.stderr)
	}
	if r := w.helper("", "status", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"logged_in": false`) {
		t.Fatalf("status after logout: exit %d\n%s", r.code, r.stdout)
	}
	// The pull token stays (it is not the session's) and is still served.
	if user, _, r := w.get(host); r.code != 0 || user == "_token" {
		t.Fatalf("get after logout with a saved pull token: exit %d user %q %s", r.code, user, r.stdout)
	}
	for i := 0; i < 2; i++ {
		r := w.helper("", "logout", "--all")
		if r.code != 0 {
			t.Fatalf("logout --all (#%d): exit %d: %s", i+1, r.code, r.stderr)
		}
	}
	r := w.helper(host, "get")
	if r.code != 1 || strings.TrimSpace(r.stdout) != "credentials not found in native keychain" {
		t.Fatalf("get after logout --all: exit %d %q; want not found", r.code, r.stdout)
	}
	if r := w.helper("", "list"); r.code != 0 || strings.TrimSpace(r.stdout) != "{}" {
		t.Fatalf("list after logout --all: exit %d %q", r.code, r.stdout)
	}
	if files, _ := filepath.Glob(filepath.Join(w.storeDir(), "*.secret")); len(files) != 0 {
		t.Fatalf("secrets left in the store after logout --all: %v", files)
	}
}
