package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

var userCodeRE = regexp.MustCompile(`enter the code: ([A-Z0-9-]+)`)

// headless starts `login --headless`, waits for the user code on stderr, lets decide()
// approve or deny it at the emulator, and returns the login's result.
func (w *world) headless(t *testing.T, decide func(code string) error) (exit int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin, "login", "--headless")
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
		t.Fatalf("login --headless printed no user code:\n%s", all.String())
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
	w := newWorld(t, emulator.Options{DeviceInterval: 100 * time.Millisecond})
	code, stderr := w.headless(t, w.emu.ApproveDevice)
	if code != 0 {
		t.Fatalf("login --headless: exit %d\n%s", code, stderr)
	}
	if user, _, r := w.get(w.emu.RegistryHost()); r.code != 0 || user != "_token" {
		t.Fatalf("get after headless login: exit %d %s", r.code, r.stdout)
	}
	// Denied at the issuer: login fails with the reason and stores nothing.
	w2 := newWorld(t, emulator.Options{DeviceInterval: 100 * time.Millisecond})
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
// secrets are and when the session expires; --json carries the same.
func TestStatusAfterLogin(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	r := w.helper("", "status", "--json")
	var st struct {
		LoggedIn      bool   `json:"logged_in"`
		Subject       string `json:"subject"`
		Email         string `json:"email"`
		Org           string `json:"org"`
		Store         string `json:"store"`
		RefreshExpiry string `json:"refresh_expiry"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("status --json: exit %d: %s", r.code, r.stderr)
	}
	u := w.emu.User()
	if !st.LoggedIn || st.Subject != u.ID || st.Email != u.Email || st.Org != w.emu.Org().Name || st.Store == "" || st.RefreshExpiry == "" {
		t.Fatalf("status --json = %+v; want %s, %s, org %s", st, u.ID, u.Email, w.emu.Org().Name)
	}
	if r := w.helper("", "status"); r.code != 0 || !strings.Contains(r.stdout, w.emu.Org().Name) || !strings.Contains(r.stdout, u.Email) {
		t.Fatalf("status: exit %d:\n%s", r.code, r.stdout)
	}
}
