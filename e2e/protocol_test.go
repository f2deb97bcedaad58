package e2e

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// program runs the helper in this world for the reference client package. (Its own
// NewShellProgramFuncWithEnv keeps only the last variable of the map.)
func (w *world) program() client.ProgramFunc {
	return func(args ...string) client.Program {
		cmd := exec.Command(helperBin, args...)
		cmd.Env = w.environ()
		return &shell{cmd: cmd}
	}
}

type shell struct{ cmd *exec.Cmd }

func (s *shell) Output() ([]byte, error) { return s.cmd.Output() }
func (s *shell) Input(in io.Reader)      { s.cmd.Stdin = in }

// The five actions through the reference client, as Docker runs them.
func TestProtocolThroughReferenceClient(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	host := w.emu.RegistryHost()
	prog := w.program()

	if got, err := client.List(prog); err != nil || len(got) != 0 {
		t.Fatalf("list on an empty store = %v, %v; want {}", got, err)
	}
	if _, err := client.Get(prog, host); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("get with nothing configured: %v; want not found", err)
	}
	w.login()
	id, tok := w.pullToken()
	if err := client.Store(prog, &credentials.Credentials{ServerURL: host, Username: id, Secret: tok}); err != nil {
		t.Fatalf("store of a pull token: %v", err)
	}
	for _, u := range []string{host, "http://" + host, "https://" + host + "/v2/", host + "/" + w.emu.Org().Name + "/app"} {
		c, err := client.Get(prog, u)
		if err != nil {
			t.Fatalf("get %s: %v", u, err)
		}
		if c.Username != id || c.Secret != tok || c.ServerURL != u {
			t.Fatalf("get %s answered user %q (want the pull token's identity)", u, c.Username)
		}
	}
	if got, err := client.List(prog); err != nil || got[host] != id {
		t.Fatalf("list = %v, %v; want %s: %s", got, err, host, id)
	}
	// docker logout erases twice; both must succeed, and everything for the host is gone.
	for i := 0; i < 2; i++ {
		if err := client.Erase(prog, host); err != nil {
			t.Fatalf("erase #%d: %v", i+1, err)
		}
	}
	if _, err := client.Get(prog, host); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("get after erase: %v; want not found", err)
	}
	if got, _ := client.List(prog); len(got) != 0 {
		t.Fatalf("list after erase = %v; want {}", got)
	}
}

// A host we do not serve never gets a token, however it is spelled.
func TestForeignHostsGetNothing(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	host := w.emu.RegistryHost()
	for _, u := range []string{"cgr.dev.evil.com", "evil.com/" + host, "https://" + host + "@evil.com", "https://evil.com#@" + host, host + ".evil.com", "docker.io"} {
		r := w.helper(u, "get")
		if r.code != 1 || strings.TrimSpace(r.stdout) != "credentials not found in native keychain" {
			t.Errorf("get %q: exit %d, stdout %q; want the not-found line", u, r.code, r.stdout)
		}
	}
}

// Bad input gets one line and exit 1, and the store is untouched.
func TestBadInput(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	host := w.emu.RegistryHost()
	before := snapshot(t, w.storeDir())
	huge := strings.Repeat("A", 3<<20)
	cases := []struct{ action, stdin string }{
		{"store", "garbage"},
		{"store", `{"ServerURL":"` + host + `"}`},
		{"store", `{"Username":"_token","Secret":"x"}`},
		{"store", `{"ServerURL":"` + host + `","Username":"someone@example.com","Secret":"hunter2"}`},
		{"store", `{"ServerURL":"` + host + `","Username":"_token","Secret":"not-a-jwt"}`},
		{"store", `{"ServerURL":"evil.com","Username":"_token","Secret":"x"}`},
		{"store", "\xff\xfe\x00{"},
		{"store", huge},
		{"get", ""},
		{"get", "   \n"},
		{"get", huge},
		{"get", "\xff\xfe"},
		{"erase", ""},
	}
	for _, c := range cases {
		r := w.helper(c.stdin, c.action)
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if r.code != 1 || len(lines) != 1 || lines[0] == "" {
			t.Errorf("%s %.40q: exit %d, stdout %q; want one line and exit 1", c.action, c.stdin, r.code, r.stdout)
		}
		noSecretIn(t, "stdout", r.stdout, "hunter2")
		noSecretIn(t, "stderr", r.stderr, "hunter2")
	}
	if after := snapshot(t, w.storeDir()); !equalMaps(before, after) {
		t.Fatal("bad input changed the store")
	}
	if _, _, r := w.get(host); r.code != 0 {
		t.Fatalf("get after bad input: exit %d: %s", r.code, r.stdout)
	}
}

// Many helpers at once (parallel pulls, BuildKit) lose nothing: stores and gets on two
// hosts while a third is erased over and over.
func TestConcurrentProcesses(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	a, b, c := w.emu.RegistryHost(), "127.0.0.1:1", "127.0.0.1:2"
	id, tok := w.pullToken()
	w.env["CGR_REGISTRY"] = strings.Join([]string{a, b, c}, ",")
	prog := w.program()
	for _, h := range []string{a, b, c} {
		if err := client.Store(prog, &credentials.Credentials{ServerURL: h, Username: id, Secret: tok}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 4; j++ {
				host := []string{a, b}[(i+j)%2]
				switch (i + j) % 4 {
				case 0, 1:
					errs <- client.Store(prog, &credentials.Credentials{ServerURL: host, Username: id, Secret: tok})
				case 2:
					got, err := client.Get(prog, host)
					if err == nil && (got.Username != id || got.Secret != tok) {
						err = errors.New("get answered another credential for " + host)
					}
					errs <- err
				case 3:
					errs <- client.Erase(prog, c)
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, h := range []string{a, b} {
		got, err := client.Get(prog, h)
		if err != nil || got.Username != id || got.Secret != tok {
			t.Fatalf("after concurrent store/get/erase, %s lost its credential: %v", h, err)
		}
	}
	if _, err := client.Get(prog, c); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("erased host still answers: %v", err)
	}
	if got, _ := client.List(prog); got[a] != id || got[b] != id || got[c] != "" {
		t.Fatalf("list after the storm = %v", got)
	}
}

func (w *world) storeDir() string {
	return filepath.Join(w.env["XDG_DATA_HOME"], "docker-credential-cgr")
}

// snapshot reads every file under dir (locks excluded), for "nothing changed" checks.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".lock") {
			return nil
		}
		b, _ := os.ReadFile(p)
		m[p] = b
		return nil
	})
	return m
}

func equalMaps(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// hostileServerURLs reads the hostile server URLs that credhelper's tests also read (the
// served hosts there are cgr.dev and 127.0.0.1:5000).
func hostileServerURLs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "credhelper", "testdata", "hostile-server-urls.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var forms []string
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			forms = append(forms, line)
		}
	}
	if len(forms) < 25 {
		t.Fatalf("only %d hostile forms", len(forms))
	}
	return forms
}

// Every hostile server URL, through the reference client and the built binary, is not found
// while a usable credential is stored for each served host; no secret on stdout or stderr.
func TestHostileServerURLsThroughReferenceClient(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	w.login()
	id, tok := w.pullToken()
	// Not the emulator's host: its random port could be one the hostile forms name.
	w.env["CGR_REGISTRY"] = "cgr.dev,127.0.0.1:5000"
	var stderr bytes.Buffer
	prog := func(args ...string) client.Program {
		cmd := exec.Command(helperBin, args...)
		cmd.Env = w.environ()
		cmd.Stderr = &stderr
		return &shell{cmd: cmd}
	}
	if err := client.Store(prog, &credentials.Credentials{ServerURL: "cgr.dev", Username: id, Secret: tok}); err != nil {
		t.Fatalf("store of a pull token: %v", err)
	}
	// The credentials are usable: genuine forms get them.
	if c, err := client.Get(prog, "https://cgr.dev/v2/"); err != nil || c.Username != id || c.Secret != tok {
		t.Fatalf("get cgr.dev: %v; want the stored pull token", err)
	}
	c, err := client.Get(prog, "127.0.0.1:5000")
	if err != nil || c.Username != "_token" || c.Secret == "" {
		t.Fatalf("get 127.0.0.1:5000: %v; want the session's _token", err)
	}
	session := c.Secret
	for _, form := range hostileServerURLs(t) {
		stderr.Reset()
		c, err := client.Get(prog, form)
		if c != nil {
			noSecretIn(t, "the answer to get "+form, c.Username+c.Secret, tok, session)
		}
		if err != nil {
			noSecretIn(t, "the error of get "+form, err.Error(), tok, session)
		}
		noSecretIn(t, "stderr of get "+form, stderr.String(), tok, session)
		if !credentials.IsErrCredentialsNotFound(err) {
			t.Errorf("get %q: %v; want not found", form, err)
		}
	}
}

// A broken setting breaks only the hosts the helper would serve: where it is the global
// credsStore, pulls from every other registry go on (not found, as always).
func TestSettingsErrorOnlyForServedHosts(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	emuHost := w.emu.RegistryHost()
	const notFound = "credentials not found in native keychain\n"
	cfg := filepath.Join(w.env["XDG_CONFIG_HOME"], "docker-credential-cgr", "config.yaml")
	for _, c := range []struct {
		name  string
		setup func()
		cause string // in the error line of a served host
	}{
		{"broken config.yaml", func() { w.write(cfg, "registry: [cgr.dev\n") }, "config.yaml"},
		{"unknown key in config.yaml", func() { w.write(cfg, "registyr: cgr.dev\n") }, "config.yaml"},
		{"bad CGR_STORE", func() { os.Remove(cfg); w.env["CGR_STORE"] = "vault" }, "CGR_STORE"},
		{"bad entry in CGR_REGISTRY", func() {
			w.env["CGR_STORE"] = "file"
			w.env["CGR_REGISTRY"] = emuHost + ",https://bad/"
		}, "CGR_REGISTRY"},
	} {
		c.setup()
		for _, served := range []string{"cgr.dev", "https://cgr.dev/v2/", emuHost, "http://" + emuHost + "/v2/"} {
			r := w.helper(served, "get")
			if r.code != 1 || strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(r.stdout, "docker-credential-cgr: ") || !strings.Contains(r.stdout, c.cause) {
				t.Errorf("%s: get %s = %d %q; want one error line naming %s", c.name, served, r.code, r.stdout, c.cause)
			}
			if r := w.helper(served, "erase"); r.code != 1 || !strings.Contains(r.stdout, c.cause) {
				t.Errorf("%s: erase %s = %d %q; want the error line", c.name, served, r.code, r.stdout)
			}
		}
		for _, foreign := range []string{"example.com", "cgr.dev.evil.com", "https://index.docker.io/v1/", "https://cgr.dev@evil.com"} {
			if r := w.helper(foreign, "get"); r.code != 1 || r.stdout != notFound {
				t.Errorf("%s: get %s = %d %q; want exactly the not-found line", c.name, foreign, r.code, r.stdout)
			}
			if r := w.helper(foreign, "erase"); r.code != 0 || r.stdout != "" {
				t.Errorf("%s: erase %s = %d %q; want nothing to erase, exit 0", c.name, foreign, r.code, r.stdout)
			}
		}
		store := `{"ServerURL":"example.com","Username":"_token","Secret":"x"}`
		if r := w.helper(store, "store"); r.code != 1 || !strings.Contains(r.stdout, c.cause) {
			t.Errorf("%s: store = %d %q; want the error line", c.name, r.code, r.stdout)
		}
		if r := w.helper("", "list"); r.code != 0 || r.stdout != "{}\n" {
			t.Errorf("%s: list = %d %q; want {}", c.name, r.code, r.stdout)
		}
	}
}

// version, -v and --version print the one documented line.
func TestVersion(t *testing.T) {
	bi, err := buildinfo.ReadFile(helperBin)
	if err != nil {
		t.Fatal(err)
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	want := "docker-credential-cgr (github.com/cgrtools/docker-credential-cgr) " + v + "\n"
	w := &world{t: t, env: map[string]string{"HOME": t.TempDir()}}
	for _, arg := range []string{"version", "-v", "--version"} {
		if r := w.helper("", arg); r.code != 0 || r.stdout != want {
			t.Errorf("%s = %d %q; want %q", arg, r.code, r.stdout, want)
		}
	}
}
