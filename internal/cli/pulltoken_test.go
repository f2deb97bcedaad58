package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/keystore"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// ptEnv runs user commands in process against an emulator and a real file store.
type ptEnv struct {
	t   *testing.T
	emu *emulator.Emulator
	env map[string]string
	// clock is this machine's clock as the commands see it: the emulator's by default, so
	// that the two agree; the wall clock to let the emulator's run ahead of it.
	clock token.Clock
}

func newPTEnv(t *testing.T) *ptEnv {
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
	return &ptEnv{t: t, emu: emu, env: env, clock: emu.Clock()}
}

func (e *ptEnv) newDeps(stderr *bytes.Buffer) func(context.Context, config.Settings) (token.Deps, error) {
	return func(ctx context.Context, s config.Settings) (token.Deps, error) {
		st, err := keystore.Open(ctx, keystore.Options{Backend: "file", Dir: s.StoreDir})
		if err != nil {
			return token.Deps{}, err
		}
		return token.Deps{
			Settings: s, Store: st, HTTP: &http.Client{Timeout: 10 * time.Second}, Clock: e.clock,
			Stderr: stderr, Rand: rand.Reader, OpenBrowser: e.emu.Browse,
		}, nil
	}
}

// run executes one command line; it returns stdout, stderr and the exit status.
func (e *ptEnv) run(stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	a := &App{Getenv: func(k string) string { return e.env[k] }, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}
	a.NewDeps = e.newDeps(&errb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Execute(ctx, a, args)
	return out.String(), errb.String(), code
}

// deps are the dependencies a command of this environment sees.
func (e *ptEnv) deps() token.Deps {
	e.t.Helper()
	s, err := config.Load(func(k string) string { return e.env[k] }, config.Flags{})
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := e.newDeps(&bytes.Buffer{})(context.Background(), s)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *ptEnv) login() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := token.Login(ctx, e.deps(), token.LoginOptions{}); err != nil {
		e.t.Fatalf("login: %v", err)
	}
}

func (e *ptEnv) pull(user, pass string) error {
	ref, err := name.ParseReference(e.emu.PrivateImage(), name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	return err
}

func TestPullTokenCommands(t *testing.T) {
	e := newPTEnv(t)
	host := e.emu.RegistryHost()

	_, errs, code := e.run("", "pull-token", "create")
	if code != 1 || !strings.Contains(errs, "docker-credential-cgr login") {
		t.Fatalf("create without a login: exit %d, stderr %q; want 1 and the login fix", code, errs)
	}
	e.login()

	for _, ttl := range []string{"9000h", "-1h", "soon"} {
		if _, errs, code := e.run("", "pull-token", "create", "--ttl", ttl); code != 2 {
			t.Errorf("create --ttl %s: exit %d (%s); want 2", ttl, code, errs)
		}
	}

	// --json --save: the documented shape, stored for get, pulling.
	out, errs, code := e.run("", "pull-token", "create", "--json", "--save", "--ttl", "30d", "--name", "ci")
	if code != 0 {
		t.Fatalf("create --json: exit %d: %s", code, errs)
	}
	var created map[string]string
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&created); err != nil {
		t.Fatalf("create --json: %v", err)
	}
	id, tok := created["identity_id"], created["token"]
	exp, err := time.Parse(time.RFC3339, created["expires"])
	if err != nil || len(created) != 3 || !token.ValidIdentityID(id) || tok == "" {
		t.Fatalf("create --json printed %d keys, expires %q", len(created), created["expires"])
	}
	if d := exp.Sub(e.emu.Clock().Now()); d < 719*time.Hour || d > 720*time.Hour {
		t.Errorf("--ttl 30d expires in %v", d)
	}
	if err := e.pull(id, tok); err != nil {
		t.Fatalf("the created token does not pull: %v", err)
	}
	if strings.Contains(errs, tok) {
		t.Fatal("the token is on stderr")
	}
	d := e.deps()
	if st, err := token.NewPullTokens(d, nil).Stored(context.Background(), host); err != nil || st.Identity != id || st.Name != "ci" {
		t.Fatalf("--save: stored %v %v", st, err)
	}

	// Text: the token on a line of its own, and a docker login line that keeps it out of argv.
	out, _, code = e.run("", "pull-token", "create", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("create: exit %d", code)
	}
	var second, secondTok string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Username: ") {
			second = strings.TrimPrefix(l, "Username: ")
		}
		if strings.Count(l, ".") == 2 && !strings.Contains(l, " ") && len(l) > 100 {
			secondTok = l
		}
	}
	login := fmt.Sprintf("docker login %s --username %s --password-stdin", host, second)
	if !token.ValidIdentityID(second) || secondTok == "" || !strings.Contains(out, login) {
		t.Fatalf("create printed no token line or no %q line", login)
	}
	// The docker login line is ready to run as pasted, and the token goes through stdin
	// (printf is a shell builtin), never as an argument of docker.
	ready := fmt.Sprintf("printf '%%s' '%s' | %s", secondTok, login)
	if !strings.Contains(out, ready) || strings.Contains(out, "--password ") {
		t.Fatal("create printed no ready docker login line that passes the token on stdin")
	}
	if err := e.pull(second, secondTok); err != nil {
		t.Fatalf("the printed token does not pull: %v", err)
	}

	// list: both, the saved one marked.
	out, errs, code = e.run("", "pull-token", "list", "--json")
	if code != 0 {
		t.Fatalf("list --json: exit %d: %s", code, errs)
	}
	var rows []pullTokenListJSON
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("list --json: %v: %s", err, out)
	}
	for _, r := range rows {
		saved := len(r.StoredFor) == 1 && r.StoredFor[0] == host
		if (r.IdentityID == id) != saved {
			t.Errorf("row %+v: stored mark wrong", r)
		}
	}
	out, _, _ = e.run("", "pull-token", "list")
	if !strings.Contains(out, id) || !strings.Contains(out, second) || !strings.Contains(out, "* "+host) || strings.Contains(out, tok) {
		t.Errorf("list:\n%s", out)
	}

	// delete: gone remotely, forgotten locally.
	if _, errs, code := e.run("", "pull-token", "delete", id); code != 0 {
		t.Fatalf("delete: exit %d: %s", code, errs)
	}
	if e.emu.Identity(id) {
		t.Error("deleted identity still exists")
	}
	if _, err := token.NewPullTokens(d, nil).Stored(context.Background(), host); err == nil {
		t.Error("the deleted token is still stored")
	}
	if _, _, code := e.run("", "pull-token", "delete", "nope"); code != 2 {
		t.Errorf("delete of a malformed id: exit %d; want 2", code)
	}
	if _, errs, code := e.run("", "pull-token", "delete", id); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("delete again: exit %d %q", code, errs)
	}
}

// create --save over a stored pull token says, on one stderr line, which one it replaced,
// until when that one stays valid and how to delete it; it deletes nothing itself.
func TestPullTokenCreateSaveReplaces(t *testing.T) {
	e := newPTEnv(t)
	// Two served hosts hold the saved token: still one line per replaced token.
	e.env["CGR_REGISTRY"] = e.emu.RegistryHost() + ",registry.example.test"
	e.login()
	create := func(args ...string) (id, stderr string) {
		t.Helper()
		out, errs, code := e.run("", append([]string{"pull-token", "create", "--json"}, args...)...)
		var c pullTokenJSON
		if code != 0 || json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("create %v: exit %d: %s", args, code, errs)
		}
		noSecret(t, "create's stderr", errs, c.Token)
		return c.IdentityID, errs
	}

	first, errs := create("--save", "--ttl", "2h")
	if strings.Contains(errs, "replaced") {
		t.Fatalf("the first --save says it replaced something: %q", errs)
	}
	if _, errs := create("--ttl", "1h"); strings.Contains(errs, "replaced") {
		t.Fatalf("create without --save says it replaced something: %q", errs)
	}
	firstExp := e.stored(e.emu.RegistryHost()).Expiry.UTC().Format(time.RFC3339)

	second, errs := create("--save", "--ttl", "3h")
	var lines []string
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, "replaced") {
			lines = append(lines, l)
		}
	}
	want := []string{first, "valid until " + firstExp, "`docker-credential-cgr pull-token delete " + first + "`"}
	if len(lines) != 1 {
		t.Fatalf("%d lines about the replaced token; want 1:\n%s", len(lines), errs)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("the replacement note %q does not contain %q", lines[0], w)
		}
	}
	if !e.emu.Identity(first) {
		t.Error("the replaced pull token was deleted; it may be in use elsewhere")
	}
	for _, h := range []string{e.emu.RegistryHost(), "registry.example.test"} {
		if got := e.stored(h).Identity; got != second {
			t.Errorf("stored for %s: %s; want the new %s", h, got, second)
		}
	}

	// A replaced token that has expired (by the platform's clock) is not called valid.
	if _, errs, code := e.run("", "pull-token", "create", "--save", "--ttl", "1m"); code != 0 {
		t.Fatalf("create --ttl 1m: exit %d: %s", code, errs)
	}
	third := e.stored(e.emu.RegistryHost()).Identity
	e.emu.Clock().Advance(2 * time.Minute)
	_, errs = create("--save", "--ttl", "1h")
	if !strings.Contains(errs, "replaced the stored pull token "+third+" (expired ") {
		t.Errorf("replacing an expired token: stderr %q", errs)
	}
}

// list judges expiry with the platform's clock (here 30 minutes ahead of ours) and marks
// the token saved here for get, in the table and in --json, whose fields stay.
func TestPullTokenListMarks(t *testing.T) {
	e := newPTEnv(t)
	e.clock = token.SystemClock{}
	e.login()
	host := e.emu.RegistryHost()
	id := func(args ...string) string {
		t.Helper()
		out, errs, code := e.run("", append([]string{"pull-token", "create", "--json"}, args...)...)
		var c pullTokenJSON
		if code != 0 || json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("create %v: exit %d: %s", args, code, errs)
		}
		return c.IdentityID
	}
	short := id("--ttl", "20m")
	saved := id("--ttl", "3h", "--save")
	other := id("--ttl", "2h")
	// By our clock all three are alive; by the platform's the 20-minute one has expired.
	e.emu.Clock().Advance(30 * time.Minute)

	out, errs, code := e.run("", "pull-token", "list", "--json")
	if code != 0 {
		t.Fatalf("list --json: exit %d: %s", code, errs)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("list --json: %v: %s", err, out)
	}
	for _, r := range rows {
		for _, k := range []string{"identity_id", "name", "expires", "stored_for", "expired"} {
			if _, ok := r[k]; !ok {
				t.Errorf("list --json row without %q: %v", k, r)
			}
		}
		rid := r["identity_id"]
		if got, want := r["expired"], rid == short; got != want {
			t.Errorf("%s: expired %v; want %v", rid, got, want)
		}
		storedFor, _ := r["stored_for"].([]any)
		if got, want := len(storedFor) == 1 && storedFor[0] == host, rid == saved; got != want {
			t.Errorf("%s: stored_for %v", rid, r["stored_for"])
		}
	}

	out, errs, code = e.run("", "pull-token", "list")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	if !strings.Contains(lines["IDENTITY"], "SAVED FOR GET") {
		t.Errorf("list header: %q", lines["IDENTITY"])
	}
	for _, c := range []struct {
		id              string
		expired, marked bool
	}{{short, true, false}, {saved, false, true}, {other, false, false}} {
		l, ok := lines[c.id]
		if !ok {
			t.Fatalf("list does not show %s:\n%s", c.id, out)
		}
		if got := strings.Contains(l, "(expired)"); got != c.expired {
			t.Errorf("row of %s marked expired: %v; want %v: %q", c.id, got, c.expired, l)
		}
		if got := strings.Contains(l, "* "+host); got != c.marked {
			t.Errorf("row of %s marked saved: %v; want %v: %q", c.id, got, c.marked, l)
		}
	}
}

// stored is the pull token stored for host; the test fails when there is none.
func (e *ptEnv) stored(host string) *token.PullToken {
	e.t.Helper()
	pt, err := token.NewPullTokens(e.deps(), nil).Stored(context.Background(), host)
	if err != nil {
		e.t.Fatalf("stored for %s: %v", host, err)
	}
	return pt
}

// noSecret fails when secret appears in text.
func noSecret(t *testing.T, what, text, secret string) {
	t.Helper()
	if secret != "" && strings.Contains(text, secret) {
		t.Fatalf("a secret appears in %s", what)
	}
}

func TestKubeSecretCommand(t *testing.T) {
	e := newPTEnv(t)
	e.login()
	host := e.emu.RegistryHost()
	type secret struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name, Namespace string
			Annotations     map[string]string
		} `json:"metadata"`
		Type string            `json:"type"`
		Data map[string][]byte `json:"data"`
	}
	for _, args := range [][]string{
		{"kube-secret", "--namespace", "apps", "--ttl", "2h"},
		{"kube-secret", "-o", "json", "--name", "regcred"},
	} {
		out, errs, code := e.run("", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var s secret
		if err := yaml.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != "kubernetes.io/dockerconfigjson" {
			t.Fatalf("%v: %s %s of type %q", args, s.APIVersion, s.Kind, s.Type)
		}
		var cfg struct {
			Auths map[string]struct{ Username, Password string }
		}
		if err := json.Unmarshal(s.Data[".dockerconfigjson"], &cfg); err != nil {
			t.Fatal(err)
		}
		a := cfg.Auths[host]
		if err := e.pull(a.Username, a.Password); err != nil {
			t.Fatalf("%v: the Secret's credentials do not pull: %v", args, err)
		}
	}
	if _, _, code := e.run("", "kube-secret", "-o", "xml"); code != 2 {
		t.Errorf("-o xml: exit %d; want 2", code)
	}
	if _, _, code := e.run("", "kube-secret", "--name", "Bad_Name"); code != 2 {
		t.Errorf("--name Bad_Name: exit %d; want 2", code)
	}
}

func TestKubeletProviderCommand(t *testing.T) {
	e := newPTEnv(t)
	host := e.emu.RegistryHost()
	req := fmt.Sprintf(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":%q}`, e.emu.PrivateImage())
	ask := func() (user, pass string) {
		t.Helper()
		out, errs, code := e.run(req, "kubelet-provider")
		if code != 0 {
			t.Fatalf("kubelet-provider: exit %d: %s", code, errs)
		}
		var resp struct {
			Auth map[string]struct{ Username, Password string }
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatal(err)
		}
		a := resp.Auth[host]
		return a.Username, a.Password
	}
	// Nothing configured: no credentials.
	if u, _ := ask(); u != "" {
		t.Fatalf("credentials with nothing configured: %q", u)
	}
	// A session: _token.
	e.login()
	u, p := ask()
	if u != "_token" {
		t.Fatalf("with a session: username %q", u)
	}
	if err := e.pull(u, p); err != nil {
		t.Fatalf("session credentials do not pull: %v", err)
	}
	// A stored pull token wins over the session.
	if _, errs, code := e.run("", "pull-token", "create", "--save", "--ttl", "1h"); code != 0 {
		t.Fatalf("create --save: %s", errs)
	}
	u, p = ask()
	if !token.ValidIdentityID(u) || !strings.Contains(u, "/") {
		t.Fatalf("with a stored pull token: username %q", u)
	}
	if err := e.pull(u, p); err != nil {
		t.Fatalf("pull token credentials do not pull: %v", err)
	}
}
