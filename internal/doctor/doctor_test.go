package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

func TestRunGradesAndKeepsOrder(t *testing.T) {
	checks := []Check{
		NewCheck("a", func(context.Context) []Result { return []Result{{Status: OK, Saw: "fine"}} }),
		NewCheck("b", func(context.Context) []Result {
			return []Result{{Status: Warn, Saw: "soon"}, {Check: "b/2", Status: Skip, Saw: "n/a"}}
		}),
		NewCheck("c", func(context.Context) []Result { panic("boom") }),
	}
	r := Run(context.Background(), checks)
	if r.OK || len(r.Results) != 4 {
		t.Fatalf("%+v", r)
	}
	want := []string{"a ok", "b warn", "b/2 skip", "c fail"}
	for i, res := range r.Results {
		if got := res.Check + " " + string(res.Status); got != want[i] {
			t.Errorf("result %d: %s, want %s", i, got, want[i])
		}
	}
	var text, js bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), "1 ok, 1 warn, 1 fail, 1 skipped") {
		t.Errorf("text:\n%s", text.String())
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.OK || len(back.Results) != 4 {
		t.Errorf("json round trip: %v %+v", err, back)
	}
	if r := Run(context.Background(), checks[:2]); !r.OK {
		t.Error("warn and skip must not fail the run")
	}
}

// fakeStore is a keystore.Store whose reads fail with err.
type fakeStore struct{ err error }

func (f fakeStore) Get(context.Context, string) ([]byte, error) { return nil, f.err }
func (fakeStore) Set(context.Context, string, []byte) error     { return nil }
func (fakeStore) Delete(context.Context, string) error          { return nil }
func (fakeStore) DeleteAll(context.Context) error               { return nil }
func (fakeStore) Describe() string                              { return "fake keychain" }
func (fakeStore) Kind() string                                  { return "keychain" }

func TestStandardChecks(t *testing.T) {
	home := t.TempDir()
	bin := filepath.Join(home, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, clientconfig.HelperBinary), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "docker-credential-desktop"), []byte("#!/bin/sh\n"), 0o755) // Docker Desktop's store (ListStore answers for it)
	envm := map[string]string{"HOME": home, "PATH": bin, "XDG_RUNTIME_DIR": filepath.Join(home, "run")}
	getenv := func(k string) string { return envm[k] }
	acct := clientconfig.Account{Name: "t", UID: -1, GID: -1, Home: home, Getenv: getenv, GOOS: "linux"}
	hosts := []string{"cgr.dev"}
	notSudo := false
	env := Env{
		Settings: config.Settings{Registries: hosts, Store: "auto", StoreDir: filepath.Join(home, "store")},
		Getenv:   getenv, Accounts: []clientconfig.Account{acct}, Sudo: &notSudo,
		OpenStore: func(context.Context) (keystore.Store, error) { return fakeStore{keystore.ErrNotFound}, nil },
		ListStore: func(_ context.Context, name string) (map[string]string, error) {
			return map[string]string{"https://cgr.dev": "_token", "ghcr.io": "me"}, nil
		},
	}
	statuses := func() map[string]Status {
		m := map[string]Status{}
		for _, r := range Run(context.Background(), Standard(env)).Results {
			if m[r.Check] != Fail {
				m[r.Check] = r.Status
			}
		}
		return m
	}
	// Nothing configured: every client fails, the helper and store are fine.
	got := statuses()
	for _, c := range []string{"docker config", "containers config", "helm config"} {
		if got[c] != Fail {
			t.Errorf("unwired %s: %s", c, got[c])
		}
	}
	if got["helper on your PATH"] != OK || got["secret store"] != OK {
		t.Errorf("%v", got)
	}
	// Configure fixes the clients; a credsStore that still holds a cgr.dev login warns.
	for _, c := range clientconfig.Configure(acct, clientconfig.Options{Hosts: hosts}) {
		if c.Action == clientconfig.Failed {
			t.Fatal(c.Line())
		}
	}
	dockerCfg := filepath.Join(home, ".docker", "config.json")
	b, _ := os.ReadFile(dockerCfg)
	os.WriteFile(dockerCfg, bytes.Replace(b, []byte("{"), []byte(`{"credsStore": "desktop",`), 1), 0o600)
	r := Run(context.Background(), Standard(env))
	if !r.OK {
		t.Fatalf("after configure: %+v", r.Results)
	}
	var warned bool
	for _, res := range r.Results {
		if res.Check == "docker config" && res.Status == Warn {
			warned = strings.Contains(res.Saw, "still holds a login for https://cgr.dev") &&
				res.Fix == "printf %s https://cgr.dev | docker-credential-desktop erase"
		}
	}
	if !warned {
		t.Errorf("no credsStore warning: %+v", r.Results)
	}
	// Without Docker Desktop's helper installed, that credsStore stops crane for every image:
	// a failure, fixed by configure --fix-shadowing (which deletes it).
	os.Remove(filepath.Join(bin, "docker-credential-desktop"))
	var failed bool
	for _, res := range Run(context.Background(), Standard(env)).Results {
		if res.Check == "docker config" && res.Status == Fail {
			failed = strings.Contains(res.Saw, `credsStore "desktop" names docker-credential-desktop, which is not on PATH`) &&
				res.Fix == "docker-credential-cgr configure --docker --fix-shadowing"
		}
	}
	if !failed {
		t.Errorf("a credsStore no helper answers is not a failure with its fix: %+v", r.Results)
	}
	// A locked keychain fails with a fix.
	env.OpenStore = func(context.Context) (keystore.Store, error) {
		return fakeStore{fmt.Errorf("x: %w", keystore.ErrLocked)}, nil
	}
	for _, res := range Run(context.Background(), []Check{StoreCheck(env)}).Results {
		if res.Status != Fail || !strings.Contains(res.Fix, "CGR_STORE=file") {
			t.Errorf("locked: %+v", res)
		}
	}
	// A helper missing from PATH fails with the install command.
	envm["PATH"] = home
	env.Executable = "/opt/x/" + clientconfig.HelperBinary
	res := Run(context.Background(), []Check{HelperCheck(env)}).Results[0]
	if res.Status != Fail || res.Fix != "sudo install -m 0755 /opt/x/docker-credential-cgr /usr/local/bin/docker-credential-cgr" {
		t.Errorf("missing helper: %+v", res)
	}
}

func TestProbeImageAgainstEmulator(t *testing.T) {
	e, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	host := e.RegistryHost()
	org := e.Org()
	other := e.AddOrg("other.example")
	stranger := e.AddUser("stranger@other.example", other)
	ident := e.AddAssumableIdentity(other, "https://token.actions.githubusercontent.com", "repo:x/y:ref:refs/heads/main", "")
	private := strings.TrimPrefix(e.PrivateImage(), host+"/")
	user := e.MintToken(e.User().ID, "cgr.dev")

	tests := []struct {
		name, repo, username, secret string
		status                       Status
		step                         string
		cause, fix                   []string
	}{
		{name: "public, anonymous", repo: "chainguard/static:latest", status: OK, step: "manifest", cause: []string{"can be pulled (anonymously)"}},
		{name: "private, anonymous", repo: private, status: Fail, step: "token", cause: []string{"is private", "no login or pull token"}, fix: []string{"docker-credential-cgr login"}},
		{name: "private, member", repo: private, username: "_token", secret: user, status: OK, step: "manifest"},
		{name: "private, another org's user", repo: private, username: "_token", secret: e.MintToken(stranger.ID, "cgr.dev"), status: Fail, step: "token",
			cause: []string{"not a member of org \"" + org.Name + "\""}, fix: []string{"logout && docker-credential-cgr login   # as a member of " + org.Name}},
		{name: "private, another org's identity", repo: private, username: "_token", secret: e.MintToken(ident, "cgr.dev"), status: Fail, step: "token",
			cause: []string{"belongs to org " + other.ID, "image to org \"" + org.Name + "\""}},
		{name: "unknown org", repo: "no-such-org.example/app:latest", username: "_token", secret: user, status: Fail, step: "token",
			cause: []string{"the org \"no-such-org.example\" in the image path does not exist"}, fix: []string{OrgFix}},
		{name: "no such repository", repo: org.Name + "/nope:latest", username: "_token", secret: user, status: Fail, step: "manifest",
			cause: []string{"does not exist"}},
		{name: "malformed token", repo: private, username: "_token", secret: "not-a-jwt", status: Fail, step: "token",
			cause: []string{"refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ProbeImage(context.Background(), host, tt.repo, tt.username, tt.secret, &http.Client{Timeout: 10 * time.Second})
			if p.Status != tt.status || p.Step != tt.step {
				t.Fatalf("%+v", p)
			}
			for _, c := range tt.cause {
				if !strings.Contains(p.Cause, c) {
					t.Errorf("cause %q lacks %q", p.Cause, c)
				}
			}
			for _, f := range tt.fix {
				if !strings.Contains(p.Fix, f) {
					t.Errorf("fix %q lacks %q", p.Fix, f)
				}
			}
			if got, want := p.OrgUnresolved(), strings.HasPrefix(tt.repo, "no-such-org"); got != want {
				t.Errorf("OrgUnresolved() = %v, want %v", got, want)
			}
			if tt.secret != "" && strings.Contains(p.Cause+p.Fix+p.Message, tt.secret) {
				t.Error("the secret leaked into the probe")
			}
		})
	}

	// Through ImageCheck, with an expired credential from the helper.
	e.Clock().Advance(2 * time.Hour)
	c := ImageCheck(ImageOptions{Ref: e.PrivateImage(), Hosts: []string{host},
		Credentials: func(context.Context, string) (string, string, error) { return "_token", user, nil }})
	res := Run(context.Background(), []Check{c}).Results[0]
	if res.Status != Fail || !strings.Contains(res.Saw, "a request with the Chainguard token the helper gives stopped at the registry's token endpoint: ") ||
		!strings.Contains(res.Saw, "[403 FORBIDDEN]") {
		t.Errorf("expired: %+v", res)
	}
	// Anonymous, in plain words: the request had no credential, not a "token with anonymous".
	for ref, want := range map[string]string{
		e.PrivateImage(): "an anonymous request (the helper has no credential for " + host + ") stopped at the registry's token endpoint: ",
		e.PublicImage():  e.PublicImage() + " can be pulled (anonymously)",
	} {
		c = ImageCheck(ImageOptions{Ref: ref, Hosts: []string{host},
			Credentials: func(context.Context, string) (string, string, error) { return "", "", nil }})
		res := Run(context.Background(), []Check{c}).Results[0]
		if !strings.HasPrefix(res.Saw, want) || strings.Contains(res.Saw, "with anonymous") {
			t.Errorf("anonymous %s: %q, want it to start %q", ref, res.Saw, want)
		}
	}
	c = ImageCheck(ImageOptions{Ref: "docker.io/library/alpine", Hosts: []string{host}})
	// Another registry: not our business, and never a fix that would send it our tokens.
	if res := Run(context.Background(), []Check{c}).Results[0]; res.Status != Skip || res.Fix != "" || !strings.Contains(res.Saw, "not involved") {
		t.Errorf("foreign host: %+v", res)
	}
	c = ImageCheck(ImageOptions{Ref: e.PrivateImage(), Hosts: []string{host},
		Credentials: func(context.Context, string) (string, string, error) {
			return "", "", errors.New("your cgr.dev session expired; run `docker-credential-cgr login`")
		}})
	if res := Run(context.Background(), []Check{c}).Results[0]; res.Status != Fail || !strings.Contains(res.Saw, "session expired") {
		t.Errorf("helper error: %+v", res)
	}
}

// An expired pull token is a 400 from /token during a pull (PROTOCOL.md section 7).
func TestProbeExpiredPullToken(t *testing.T) {
	host := challenging(t, func(self string) string { return self + "/token" }, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("scope") != "repository:acme.example/app:pull" || r.URL.Query().Get("service") != "cgr.dev" {
			t.Errorf("token query %s", r.URL.RawQuery)
		}
		if u, _, ok := r.BasicAuth(); !ok || u != "0123456789012345678901234567890123456789/0123456789abcdef" {
			t.Errorf("basic auth user %q", u)
		}
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"errors":[{"code":"BAD_REQUEST","message":"rpc error: code = InvalidArgument desc = this identity's keys have expired"}]}`))
	})
	p := ProbeImage(context.Background(), host, "acme.example/app", "0123456789012345678901234567890123456789/0123456789abcdef", "jwt", &http.Client{Timeout: 10 * time.Second})
	if p.Status != Fail || !strings.Contains(p.Cause, "pull token has expired") || !strings.Contains(p.Fix, "pull-token create --save") ||
		p.TokenOrg != "0123456789012345678901234567890123456789" {
		t.Errorf("%+v", p)
	}
}

// The store check's fix for an unreachable keychain is persistent: run by a shell as
// printed, it leaves a config.yaml that config.Load reads as the file store, with every other
// setting kept, and CGR_STORE unset when the environment said keychain.
func TestStoreFixPersists(t *testing.T) {
	tests := []struct {
		name, envStore, existing string
		wantUnset                bool
	}{
		{name: "no config file, CGR_STORE=keychain", envStore: "keychain", wantUnset: true},
		{name: "store: keychain in the file", existing: "registry: cgr.dev\nstore: keychain\nauto_login: false\n"},
		{name: "other keys, no final newline", existing: "auto_login: false"},
		{name: "store_dir is not store", existing: "store_dir: /tmp/x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "a home") // a space: the paths must be quoted
			cfgDir := filepath.Join(home, ".config")
			cfg := filepath.Join(cfgDir, "docker-credential-cgr", "config.yaml")
			if tt.existing != "" {
				os.MkdirAll(filepath.Dir(cfg), 0o700)
				os.WriteFile(cfg, []byte(tt.existing), 0o600)
			}
			envm := map[string]string{"HOME": home, "XDG_CONFIG_HOME": cfgDir}
			if tt.envStore != "" {
				envm["CGR_STORE"] = tt.envStore
			}
			getenv := func(k string) string { return envm[k] }
			before, err := config.Load(getenv, config.Flags{})
			if err != nil {
				t.Fatal(err)
			}
			env := Env{Settings: before, Getenv: getenv, ConfigFile: cfg,
				OpenStore: func(context.Context) (keystore.Store, error) {
					return nil, fmt.Errorf("%w: connecting to the session bus: no bus", keystore.ErrUnavailable)
				}}
			res := Run(context.Background(), []Check{StoreCheck(env)}).Results[0]
			if res.Status != Fail || strings.Contains(res.Saw, "unavailable: connecting") {
				t.Fatalf("%+v", res)
			}
			if !strings.Contains(res.Fix, "log in again") || strings.HasPrefix(res.Fix, "export") {
				t.Errorf("fix %q: want the persistent setting and a new login", res.Fix)
			}
			if got := strings.HasPrefix(res.Fix, "unset CGR_STORE && "); got != tt.wantUnset {
				t.Errorf("fix %q: unset CGR_STORE %v, want %v", res.Fix, got, tt.wantUnset)
			}
			cmd := exec.Command("sh", "-c", res.Fix)
			cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "CGR_STORE=" + tt.envStore}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("fix %q: %v\n%s", res.Fix, err, out)
			}
			delete(envm, "CGR_STORE") // what the fix's unset does in the person's shell
			after, err := config.Load(getenv, config.Flags{})
			if err != nil {
				t.Fatalf("after the fix: %v", err)
			}
			if after.Store != "file" || after.ConfigFile != cfg {
				t.Errorf("after the fix: store %q from %q", after.Store, after.ConfigFile)
			}
			if after.AutoLogin != before.AutoLogin || after.Browser != before.Browser || after.StoreDir != before.StoreDir {
				t.Errorf("the fix changed other settings: %+v, was %+v", after, before)
			}
		})
	}
}

func TestSudoFix(t *testing.T) {
	for in, want := range map[string]string{
		"docker-credential-cgr configure --docker --fix-shadowing":                          "sudo docker-credential-cgr configure --docker --fix-shadowing",
		"printf %s cgr.dev | docker-credential-desktop erase":                               "printf %s cgr.dev | sudo docker-credential-desktop erase",
		"fix or move /root/.docker/config.json, then run `docker-credential-cgr configure`": "fix or move /root/.docker/config.json, then run `sudo docker-credential-cgr configure`",
		"delete the entry from /root/.dockercfg (or the file)":                              "as root (sudo): delete the entry from /root/.dockercfg (or the file)",
	} {
		if got := SudoFix(in); got != want {
			t.Errorf("SudoFix(%q) = %q, want %q", in, got, want)
		}
	}
}

// Under sudo, doctor reads root's files too; their fixes are typed by the person who ran sudo.
func TestClientConfigRootFixesUseSudo(t *testing.T) {
	userHome, rootHome := t.TempDir(), t.TempDir()
	accts := []clientconfig.Account{
		{Name: "alice", UID: -1, GID: -1, Home: userHome, Getenv: func(string) string { return "" }, GOOS: "linux"},
		{Name: "root", UID: -1, GID: -1, Home: rootHome, Getenv: func(string) string { return "" }, GOOS: "linux"},
	}
	sudo := true
	env := Env{Settings: config.Settings{Registries: []string{"cgr.dev"}}, Getenv: func(string) string { return "" },
		Accounts: accts, Sudo: &sudo}
	var userFix, rootFix string
	for _, r := range Run(context.Background(), []Check{ClientConfigCheck(env)}).Results {
		switch r.Check {
		case "docker config (alice)":
			userFix = r.Fix
		case "docker config (root)":
			rootFix = r.Fix
		}
	}
	if userFix != "docker-credential-cgr configure --docker" || rootFix != "sudo docker-credential-cgr configure --docker" {
		t.Errorf("user's fix %q, root's fix %q", userFix, rootFix)
	}
}

// `doctor --image` sends the helper's credential only to the registry's own realm, over
// https (plain http only to a loopback host), and follows no redirect with it (CONTRACT 3a).
func TestProbeSendsCredentialsOnlyToOwnRealm(t *testing.T) {
	const secret = "the-helpers-secret"
	// A collector elsewhere: anything that reaches it with a credential is a leak.
	var leaked []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked = append(leaked, r.URL.String())
		}
		w.Write([]byte(`{"token":"x"}`))
	}))
	defer collector.Close()
	elsewhere := strings.Replace(collector.URL, "127.0.0.1", "localhost", 1) // another host name, same machine
	for _, c := range []struct {
		name  string
		realm func(self string) string
		token func(w http.ResponseWriter, r *http.Request, self string)
		want  string
	}{
		{"realm on another host", func(string) string { return elsewhere + "/token" }, nil, "not its own (another host)"},
		{"realm over plain http to a remote host", func(string) string { return "http://registry.example/token" }, nil, "not its own (plain http)"},
		{"realm with another scheme", func(string) string { return "ftp://" + "127.0.0.1/token" }, nil, "not its own"},
		{"own realm redirecting elsewhere", func(self string) string { return self + "/token" }, func(w http.ResponseWriter, r *http.Request, self string) {
			http.Redirect(w, r, elsewhere+"/steal", http.StatusTemporaryRedirect)
		}, "redirected (307 Temporary Redirect) to " + elsewhere + "/steal: not followed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			leaked = nil
			var host string
			host = challenging(t, c.realm, func(w http.ResponseWriter, r *http.Request) { c.token(w, r, "http://"+host) })
			p := ProbeImage(context.Background(), host, "acme.example/app", "_token", secret, &http.Client{Timeout: 5 * time.Second})
			if p.Status != Fail || !strings.Contains(p.Cause, c.want) || strings.Contains(p.Cause+p.Fix, secret) {
				t.Fatalf("%+v, want a failure saying %q", p, c.want)
			}
			if len(leaked) != 0 {
				t.Fatalf("the credential reached %v", leaked)
			}
		})
	}
	if err := ownRealm("cgr.dev", "https://cgr.dev:443/token"); err != nil {
		t.Errorf("cgr.dev's own realm with its default port: %v", err)
	}
	if err := ownRealm("cgr.dev", "https://cgr.dev.evil.example/token"); err == nil {
		t.Error("a look-alike host accepted")
	}
}

// A registry's words reach the terminal as one printable line: no escape sequences.
func TestProbeRegistryTextIsSafe(t *testing.T) {
	host := challenging(t, func(self string) string { return self + "/token" }, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no\\u001b]0;pwned\\u0007 access\\u001b[2J\\n\\u202espoof\"}]}"))
	})
	c := ImageCheck(ImageOptions{Ref: host + "/acme.example/app", Hosts: []string{host},
		Credentials: func(context.Context, string) (string, string, error) { return "_token", "secret", nil }})
	r := Run(context.Background(), []Check{c})
	var text, js bytes.Buffer
	r.WriteText(&text)
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), js.String()} {
		if strings.ContainsAny(out, "\x1b\x07\u202e") || strings.Contains(out, `\u001b`) {
			t.Fatalf("control characters reached the output:\n%q", out)
		}
	}
	if !strings.Contains(text.String(), "no access") {
		t.Fatalf("the registry's words are gone:\n%s", text.String())
	}
}

// A store dir that cannot be created (a read-only home): get answers not-found, and doctor
// names the store and why nothing can be kept there.
func TestStoreCheckNamesUnusableStore(t *testing.T) {
	file := filepath.Join(t.TempDir(), "read-only-home")
	os.WriteFile(file, nil, 0o600)
	dir := filepath.Join(file, "docker-credential-cgr")
	env := Env{Settings: config.Settings{Store: "file", StoreDir: dir}, Getenv: func(string) string { return "" }}
	res := Run(context.Background(), []Check{StoreCheck(env)}).Results[0]
	if res.Status != Fail || !strings.Contains(res.Saw, dir) || !strings.Contains(res.Saw, "cannot be created") ||
		!strings.Contains(res.Saw, "nothing can be stored") || !strings.Contains(res.Fix, "CGR_STORE_DIR") {
		t.Fatalf("%+v", res)
	}
}

// challenging is a registry whose /v2/ asks for a Bearer token at realm(its own URL) and whose
// /token answers with token; it returns its host:port.
func challenging(t *testing.T, realm func(self string) string, token http.HandlerFunc) string {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="cgr.dev"`, realm(srv.URL)))
			w.WriteHeader(http.StatusUnauthorized)
		case "/token":
			token(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
