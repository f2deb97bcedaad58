package credhelper

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/keystore"
	"github.com/cgrtools/docker-credential-cgr/token"
)

const notFound = "credentials not found in native keychain"

// fixture is one emulator, one settings and one real file store, driven in process.
type fixture struct {
	t    *testing.T
	emu  *emulator.Emulator
	env  map[string]string
	deps token.Deps
}

func newFixture(t *testing.T, extra map[string]string) *fixture {
	t.Helper()
	emu, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	env := map[string]string{"HOME": t.TempDir(), "CGR_STORE": "file"}
	for _, kv := range emu.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	f := &fixture{t: t, emu: emu, env: env}
	f.reload()
	return f
}

// reload rebuilds settings and dependencies from f.env (as a new process would).
func (f *fixture) reload() {
	f.t.Helper()
	s, err := config.Load(func(k string) string { return f.env[k] }, config.Flags{})
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := keystore.Open(context.Background(), keystore.Options{Backend: "file", Dir: s.StoreDir})
	if err != nil {
		f.t.Fatal(err)
	}
	f.deps = token.Deps{
		Settings:    s,
		Store:       st,
		HTTP:        &http.Client{Timeout: 10 * time.Second},
		Clock:       token.SystemClock{},
		Stderr:      io.Discard,
		Rand:        rand.Reader,
		OpenBrowser: f.emu.Browse,
	}
}

// do runs one protocol action in process and returns stdout and the exit status.
func (f *fixture) do(action, stdin string) (string, int) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := &Helper{
		Ctx:      ctx,
		Settings: f.deps.Settings,
		Deps:     func(context.Context) (token.Deps, error) { return f.deps, nil },
		Stderr:   io.Discard,
	}
	var out bytes.Buffer
	code := Handle(h, action, strings.NewReader(stdin), &out)
	return out.String(), code
}

func (f *fixture) get(serverURL string) (user, secret string) {
	f.t.Helper()
	out, code := f.do("get", serverURL)
	if code != 0 {
		f.t.Fatalf("get %s: exit %d: %s", serverURL, code, out)
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		f.t.Fatalf("get: not the protocol JSON: %v", err)
	}
	return c.Username, c.Secret
}

func (f *fixture) login() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := token.Login(ctx, f.deps, token.LoginOptions{}); err != nil {
		f.t.Fatalf("login: %v", err)
	}
}

func TestGetNothingConfiguredIsNotFound(t *testing.T) {
	f := newFixture(t, nil)
	for _, in := range []string{f.emu.RegistryHost(), "https://" + f.emu.RegistryHost() + "/v2/", "cgr.dev.evil.com"} {
		out, code := f.do("get", in)
		if code != 1 || strings.TrimSpace(out) != notFound {
			t.Errorf("get %q = %d %q; want the not-found line", in, code, out)
		}
	}
	if out, code := f.do("get", ""); code != 1 || strings.TrimSpace(out) != "no credentials server URL" {
		t.Errorf("get of blank input = %d %q", code, out)
	}
	if out, code := f.do("list", ""); code != 0 || strings.TrimSpace(out) != "{}" {
		t.Errorf("list on an empty store = %d %q; want {}", code, out)
	}
}

// The session answers with _token and a Chainguard token for the registry's audience.
func TestGetServesSessionToken(t *testing.T) {
	f := newFixture(t, nil)
	f.login()
	user, secret := f.get(f.emu.RegistryHost())
	if user != TokenUsername {
		t.Fatalf("username %q; want %q", user, TokenUsername)
	}
	tok, err := token.Parse(secret)
	if err != nil || !tok.HasAudience("cgr.dev") || !tok.Expiry.After(time.Now()) {
		t.Fatalf("secret is not a live Chainguard token for cgr.dev (%v)", err)
	}
	// docker login without -u re-stores our own answer: accepted, and never made static.
	in, _ := json.Marshal(map[string]string{"ServerURL": f.emu.RegistryHost(), "Username": user, "Secret": secret})
	if out, code := f.do("store", string(in)); code != 0 {
		t.Fatalf("re-store of our own get answer: exit %d: %s", code, out)
	}
	if out, code := f.do("list", ""); code != 0 || !strings.Contains(out, TokenUsername) {
		t.Fatalf("list = %d %q", code, out)
	}
	// erase removes the session: the next get is not-found, not a stale token.
	for i := 0; i < 2; i++ {
		if out, code := f.do("erase", f.emu.RegistryHost()); code != 0 {
			t.Fatalf("erase #%d: %d %s", i+1, code, out)
		}
	}
	if out, code := f.do("get", f.emu.RegistryHost()); code != 1 || strings.TrimSpace(out) != notFound {
		t.Fatalf("get after erase = %d %q", code, out)
	}
}

// Which credential answers: workload identity, then a stored pull token, then the session.
func TestCredentialOrder(t *testing.T) {
	f := newFixture(t, nil)
	f.login()
	host := f.emu.RegistryHost()
	pt, err := token.NewPullTokens(f.deps, token.NewSession(f.deps)).Create(context.Background(), token.CreateOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(map[string]string{"ServerURL": host, "Username": pt.Identity, "Secret": pt.Token})
	if out, code := f.do("store", string(in)); code != 0 {
		t.Fatalf("store of a pull token: %d %s", code, out)
	}
	if user, _ := f.get(host); user != pt.Identity {
		t.Fatalf("with a session and a pull token, get answered %q; want the pull token", user)
	}

	id := f.emu.AddAssumableIdentity(f.emu.Org(), f.emu.OIDCIssuerURL(), "repo:acme/app:ref:refs/heads/main", f.deps.Settings.IssuerHost())
	tokFile := filepath.Join(t.TempDir(), "oidc-token")
	if err := os.WriteFile(tokFile, []byte(f.emu.MintOIDCToken("repo:acme/app:ref:refs/heads/main", f.deps.Settings.IssuerHost(), time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	f.env["CGR_IDENTITY"], f.env["CGR_IDENTITY_TOKEN"] = id, tokFile
	f.reload()
	user, secret := f.get(host)
	tok, err := token.Parse(secret)
	if err != nil {
		t.Fatalf("with a workload identity, get answered %q and no readable token: %v", user, err)
	}
	if user != TokenUsername || tok.Subject != id {
		t.Fatalf("with a workload identity, get answered %q for subject %q; want _token for %s", user, tok.Subject, id)
	}
}

// A foreign host never reaches the store: not even a keychain prompt.
func TestForeignHostNeverOpensStore(t *testing.T) {
	h := &Helper{
		Ctx:      context.Background(),
		Settings: settings(t, "cgr.dev"),
		Deps: func(context.Context) (token.Deps, error) {
			t.Fatal("the store was opened for a foreign host")
			return token.Deps{}, nil
		},
	}
	var out bytes.Buffer
	if code := Handle(h, "get", strings.NewReader("https://cgr.dev@evil.com"), &out); code != 1 || strings.TrimSpace(out.String()) != notFound {
		t.Fatalf("= %d %q", code, out.String())
	}
}

func FuzzHandleStdin(f *testing.F) {
	for _, seed := range []string{"cgr.dev", `{"ServerURL":"cgr.dev","Username":"_token","Secret":"x"}`, "", "\xff", `{"ServerURL":1}`} {
		f.Add("get", seed)
		f.Add("store", seed)
		f.Add("erase", seed)
	}
	s := settings(f, "cgr.dev")
	f.Fuzz(func(t *testing.T, action, stdin string) {
		h := &Helper{
			Ctx:      context.Background(),
			Settings: s,
			// Nothing is stored: every action must answer without a panic and in one line.
			Deps: func(context.Context) (token.Deps, error) { return token.Deps{}, keystore.ErrUnavailable },
		}
		var out bytes.Buffer
		code := Handle(h, action, strings.NewReader(stdin), &out)
		if code != 0 && strings.Count(strings.TrimRight(out.String(), "\n"), "\n") != 0 {
			t.Fatalf("error answer is not one line: %q", out.String())
		}
	})
}

// An over-long stdin gets one line saying what was expected, not the reference
// implementation's "bufio.Scanner: token too long"; a URL just under the limit is read.
func TestHandleOverlongStdin(t *testing.T) {
	s := settings(t, "cgr.dev")
	h := &Helper{Ctx: context.Background(), Settings: s,
		Deps: func(context.Context) (token.Deps, error) { return token.Deps{}, keystore.ErrUnavailable }}
	for _, c := range []struct {
		action, stdin string
		want          string
	}{
		{"get", "cgr.dev/" + strings.Repeat("a", 70000), "credentials not found in native keychain"},
		{"erase", strings.Repeat("a", 65536) + "\ncgr.dev", "credentials not found in native keychain"},
		{"store", strings.Repeat(" ", 1<<20+1), "reads one small JSON object"},
		{"get", "example.com/" + strings.Repeat("a", 65000), "credentials not found"},
	} {
		var out bytes.Buffer
		code := Handle(h, c.action, strings.NewReader(c.stdin), &out)
		got := strings.TrimRight(out.String(), "\n")
		if code != 1 || strings.Contains(got, "\n") || !strings.Contains(got, c.want) || strings.Contains(got, "bufio") {
			t.Errorf("%s with %d bytes: exit %d %q; want one line with %q", c.action, len(c.stdin), code, got, c.want)
		}
	}
}

// list names what get would answer with: a `_token` given to store (no session); a stored
// pull token (its identity) ahead of it; the workload identity ahead of the pull token.
func TestListAgreesWithGet(t *testing.T) {
	f := newFixture(t, nil)
	host := f.emu.RegistryHost()
	tok := f.emu.MintToken(f.emu.User().ID, "cgr.dev")
	in, _ := json.Marshal(map[string]string{"ServerURL": host, "Username": TokenUsername, "Secret": tok})
	if out, code := f.do("store", string(in)); code != 0 {
		t.Fatalf("store of a _token: %d %s", code, out)
	}
	agree := func(what string) {
		t.Helper()
		user, _ := f.get(host)
		if out, _ := f.do("list", ""); !strings.Contains(out, fmt.Sprintf("%q:%q", host, user)) {
			t.Fatalf("%s: list = %s; want %s: %s, as get answers", what, out, host, user)
		}
	}
	agree("a _token given to store")

	f.login()
	pt, err := token.NewPullTokens(f.deps, token.NewSession(f.deps)).Create(context.Background(), token.CreateOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	in, _ = json.Marshal(map[string]string{"ServerURL": host, "Username": pt.Identity, "Secret": pt.Token})
	if out, code := f.do("store", string(in)); code != 0 {
		t.Fatalf("store of a pull token: %d %s", code, out)
	}
	if user, _ := f.get(host); user != pt.Identity {
		t.Fatalf("get with a stored pull token answered %q", user)
	}
	agree("a stored pull token")

	id := f.emu.AddAssumableIdentity(f.emu.Org(), f.emu.OIDCIssuerURL(), "ci", f.deps.Settings.IssuerHost())
	tokFile := filepath.Join(t.TempDir(), "oidc-token")
	if err := os.WriteFile(tokFile, []byte(f.emu.MintOIDCToken("ci", f.deps.Settings.IssuerHost(), time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	f.env["CGR_IDENTITY"], f.env["CGR_IDENTITY_TOKEN"] = id, tokFile
	f.reload()
	if user, _ := f.get(host); user != TokenUsername {
		t.Fatalf("get with a workload identity answered %q", user)
	}
	agree("a workload identity ahead of the pull token")
}

// Auto-login is policy of the protocol layer, not of a source: a get whose own user session
// can no longer be refreshed starts the browser login when AutoLogin is set (a person at the
// terminal), and otherwise answers one line naming the login command. An identity session is
// never replaced by a browser login.
func TestAutoLogin(t *testing.T) {
	for _, auto := range []bool{false, true} {
		t.Run(fmt.Sprint("AutoLogin=", auto), func(t *testing.T) {
			f := newFixture(t, nil)
			f.deps.Clock = f.emu.Clock() // time passes for both sides
			f.login()
			f.emu.RevokeRefreshTokens()
			f.emu.Clock().Advance(61 * time.Minute)
			logins := f.emu.Count("oauth")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			h := &Helper{Ctx: ctx, Settings: f.deps.Settings, Deps: func(context.Context) (token.Deps, error) { return f.deps, nil }, Stderr: &stderr, AutoLogin: auto}
			var out bytes.Buffer
			code := Handle(h, "get", strings.NewReader(f.emu.RegistryHost()), &out)
			switch {
			case code == 0 && !auto:
				t.Fatalf("without auto-login, a session whose refresh token is revoked served a token")
			case auto && (code != 0 || f.emu.Count("oauth") != logins+1):
				t.Fatalf("auto-login: exit %d, logins %d: %s; stderr %s", code, f.emu.Count("oauth")-logins, out.String(), stderr.String())
			case auto && !strings.Contains(stderr.String(), "starting a new login"):
				t.Errorf("auto-login said nothing on stderr: %q", stderr.String())
			case !auto && (code != 1 || !strings.Contains(out.String(), "docker-credential-cgr login") || f.emu.Count("oauth") != logins):
				t.Fatalf("without auto-login: exit %d %q, logins %d; want one line naming the login", code, out.String(), f.emu.Count("oauth")-logins)
			}
		})
	}
}

// Every hostile server URL gets the not-found line through the whole protocol, while the
// store holds a usable credential for each served host (a pull token for cgr.dev, the login
// session for both), and no secret is written anywhere.
func TestHandleGetRefusesHostile(t *testing.T) {
	f := newFixture(t, map[string]string{"CGR_REGISTRY": "cgr.dev,127.0.0.1:5000"})
	f.login()
	pt, err := token.NewPullTokens(f.deps, token.NewSession(f.deps)).Create(context.Background(), token.CreateOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(map[string]string{"ServerURL": "cgr.dev", "Username": pt.Identity, "Secret": pt.Token})
	if out, code := f.do("store", string(in)); code != 0 {
		t.Fatalf("store of a pull token: %d %s", code, out)
	}
	// The credentials are usable: genuine forms get them.
	if user, secret := f.get("https://cgr.dev/v2/"); user != pt.Identity || secret != pt.Token {
		t.Fatalf("get cgr.dev answered user %q; want the stored pull token", user)
	}
	user, session := f.get("127.0.0.1:5000")
	if user != TokenUsername {
		t.Fatalf("get 127.0.0.1:5000 answered user %q; want the session's %s", user, TokenUsername)
	}
	h := &Helper{
		Ctx:      context.Background(),
		Settings: f.deps.Settings,
		Deps:     func(context.Context) (token.Deps, error) { return f.deps, nil },
	}
	forms := hostileServerURLs(t)
	for _, form := range forms {
		var out, errb bytes.Buffer
		h.Stderr = &errb
		code := Handle(h, "get", strings.NewReader(form), &out)
		want := notFound + "\n"
		if strings.TrimSpace(form) == "" {
			want = "no credentials server URL\n" // the reference's answer to blank input
		}
		for _, secret := range []string{pt.Token, session} {
			if strings.Contains(out.String(), secret) || strings.Contains(errb.String(), secret) {
				t.Fatalf("get %q: exit %d, and a secret appears in the answer", form, code)
			}
		}
		if code != 1 || out.String() != want {
			t.Errorf("get %q = %d %q; want %q", form, code, out.String(), want)
		}
	}
	if len(forms) < 25 {
		t.Fatalf("only %d hostile forms", len(forms))
	}
}

// A store that cannot be opened is one line that says so once and names the command to run.
func TestGetStoreUnavailableOneLine(t *testing.T) {
	f := newFixture(t, nil)
	h := &Helper{
		Ctx:      context.Background(),
		Settings: f.deps.Settings,
		Deps: func(context.Context) (token.Deps, error) {
			return token.Deps{}, fmt.Errorf("%w: no D-Bus session bus", keystore.ErrUnavailable)
		},
		Stderr: io.Discard,
	}
	var out bytes.Buffer
	code := Handle(h, "get", strings.NewReader(f.emu.RegistryHost()), &out)
	line := strings.TrimSpace(out.String())
	if code != 1 || strings.Contains(line, "\n") {
		t.Fatalf("get with the store unavailable: exit %d %q; want exit 1 and one line", code, line)
	}
	if strings.Count(line, "unavailable") != 1 || !strings.Contains(line, "no D-Bus session bus") || !strings.Contains(line, "docker-credential-cgr doctor") {
		t.Fatalf("the line %q should say once that the store is unavailable, why, and what to run", line)
	}
}
