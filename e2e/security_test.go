package e2e

// The trust boundaries of CONTRACT 3a, as a user (or an attacker on the same machine) meets
// them through the built binary: settings and a store that someone else could write are not
// used, a read-only home still pulls public images, no core dump or /proc read can take a
// secret, and doctor sends a credential only to the registry's own realm. The sudo ones live
// in sudo_test.go.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

const notFound = "credentials not found in native keychain"

// settingsInFile moves the world's emulator settings from the environment into the user's
// config.yaml (mode 0600), so that what config.yaml says is what the helper does.
func (w *world) settingsInFile(extraRegistries ...string) string {
	w.t.Helper()
	regs := append([]string{w.emu.RegistryHost()}, extraRegistries...)
	for _, k := range []string{"CGR_REGISTRY", "CGR_ISSUER", "CGR_API"} {
		delete(w.env, k)
	}
	path := filepath.Join(w.env["XDG_CONFIG_HOME"], "docker-credential-cgr", "config.yaml")
	w.write(path, fmt.Sprintf("registry: %s\nissuer: %s\napi: %s\n", strings.Join(regs, ","), w.emu.IssuerURL(), w.emu.APIURL()))
	return path
}

// A config.yaml that others could write (or that is not the user's) is not used: one line
// says why and how to fix it, and no host it names is handed the cgr.dev token. Before, a
// world-writable file let anyone add their own host and collect the user's token.
func TestSecurityConfigFileOthersCanWrite(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	const evil = "evil.example:5000"
	cfg := w.settingsInFile(evil)
	w.login()
	if u, _, r := w.get(evil); u != "_token" {
		t.Fatalf("the user's own config.yaml names %s: get should serve it: exit %d %q", evil, r.code, r.stdout)
	}
	for _, c := range []struct {
		name string
		harm func() string
	}{
		{"world-writable file", func() string { os.Chmod(cfg, 0o666); return "chmod go-w " + cfg }},
		{"group-writable directory", func() string { os.Chmod(filepath.Dir(cfg), 0o770); return "chmod go-w " + filepath.Dir(cfg) }},
		{"file of another user", func() string { os.Chown(cfg, 65534, 65534); return "belongs to uid 65534" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() { os.Chmod(cfg, 0o600); os.Chmod(filepath.Dir(cfg), 0o700); os.Chown(cfg, 0, 0) }()
			want := c.harm()
			// The hosts only the refused file names are not served at all; the default
			// host gets the line that says why.
			for _, host := range []string{evil, w.emu.RegistryHost()} {
				r := w.helper(host, "get")
				if r.code != 1 || strings.TrimSpace(r.stdout) != notFound {
					t.Fatalf("get %s with a %s: exit %d %q, want the not-found line", host, c.name, r.code, r.stdout)
				}
				noJWTIn(t, "get's answer", r.stdout+r.stderr)
			}
			r := w.helper("cgr.dev", "get")
			line := strings.TrimSpace(r.stdout)
			if r.code != 1 || strings.Contains(line, "\n") || !strings.Contains(line, "is not used") || !strings.Contains(line, want) {
				t.Fatalf("get cgr.dev with a %s: exit %d %q, want one line saying %q", c.name, r.code, line, want)
			}
			if r := w.helper("", "status"); r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("status with a %s: exit %d: %s", c.name, r.code, r.stderr)
			}
		})
	}
}

// A store directory that is not the user's, or that others can write, is not used: a
// session planted there is not served, and the directory is left as it is.
func TestSecurityStoreDirOthersCouldWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the store to another uid")
	}
	w := newWorld(t, emulator.Options{})
	w.login()
	dir := filepath.Join(w.env["XDG_DATA_HOME"], "docker-credential-cgr")
	host := w.emu.RegistryHost()
	w.served("get from the user's own store", w.helper(host, "get"))
	for _, c := range []struct {
		name       string
		harm, undo func()
		want       string
	}{
		{"private dir of another user", func() { chownTree(t, dir, 65534) }, func() { chownTree(t, dir, 0) }, "owned by uid 65534"},
		{"the user's dir, group-writable", func() { os.Chmod(dir, 0o770) }, func() { os.Chmod(dir, 0o700) }, "chmod 700 " + dir},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.harm()
			defer c.undo()
			before, _ := os.Stat(dir)
			r := w.helper(host, "get")
			line := strings.TrimSpace(r.stdout)
			if r.code != 1 || strings.Contains(line, "\n") || !strings.Contains(line, c.want) {
				t.Fatalf("get with a %s: exit %d %q, want one line saying %q", c.name, r.code, line, c.want)
			}
			noJWTIn(t, "get's answer", r.stdout+r.stderr)
			if after, _ := os.Stat(dir); after.Mode() != before.Mode() {
				t.Errorf("the refused dir went from %v to %v", before.Mode(), after.Mode())
			}
		})
	}
	w.served("get once the store is the user's again", w.helper(host, "get"))
}

func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readOnly runs argv with dir mounted read-only, in a private mount namespace of its own.
func readOnly(t *testing.T, dir string, argv ...string) []string {
	t.Helper()
	need(t, "unshare")
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	return append([]string{"unshare", "-m", "--propagation", "private", "--", "sh", "-c",
		`d=$1; shift; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" "$d" && exec "$@"`, "sh", dir}, argv...)
}

// A read-only home (a hardened container) with nothing stored: get answers not-found, so
// crane and skopeo still pull public images anonymously, and doctor names the store that
// cannot be used. Before, every get failed "the secret store is unavailable ... read-only
// file system" and crane could not even pull a public image.
func TestSecurityReadOnlyHomePullsPublicImages(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	host := w.emu.RegistryHost()
	ro := func(name string, args ...string) result {
		argv := readOnly(t, w.home, append([]string{name}, args...)...)
		return w.run(map[string]string{"get": host}[firstArg(args)], argv[0], argv[1:]...)
	}
	r := ro(helperBin, "get")
	if r.code != 1 || strings.TrimSpace(r.stdout) != notFound {
		t.Fatalf("get on a read-only home: exit %d %q (stderr %q), want the not-found line", r.code, r.stdout, r.stderr)
	}
	if r := ro(need(t, "crane"), "digest", "--insecure", w.emu.PublicImage()); r.code != 0 {
		t.Errorf("crane digest of a public image on a read-only home: exit %d: %s", r.code, r.stderr)
	}
	if r := ro(need(t, "skopeo"), "inspect", "--raw", "--tls-verify=false", "--authfile", w.env["REGISTRY_AUTH_FILE"], "docker://"+w.emu.PublicImage()); r.code != 0 {
		t.Errorf("skopeo inspect of a public image on a read-only home: exit %d: %s", r.code, r.stderr)
	}
	dir := filepath.Join(w.env["XDG_DATA_HOME"], "docker-credential-cgr")
	r = ro(helperBin, "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "file store "+dir+" (cannot be created: read-only file system): nothing can be stored there") {
		t.Errorf("doctor on a read-only home does not name the store:\n%s%s", r.stdout, r.stderr)
	}
	r = ro(helperBin, "login")
	if r.code == 0 || !strings.Contains(r.stderr, "read-only file system") {
		t.Errorf("login on a read-only home: exit %d: %s", r.code, r.stderr)
	}
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// No core dump, and no other process of the same user, can read the secrets of a running
// helper: it is not dumpable (its /proc/<pid> files are root's, so environ and mem are
// closed to the user) and its RLIMIT_CORE is 0, from the start of main.
func TestSecurityNoCoreDumps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the helper as another user")
	}
	need(t, "setpriv")
	bin, err := os.MkdirTemp("", "cgr-core-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	os.Chmod(bin, 0o755)
	helper := filepath.Join(bin, "docker-credential-cgr")
	copyExecutable(t, helperBin, helper)
	home := t.TempDir()
	os.Chmod(home, 0o755)
	// As nobody, with cores allowed by the shell that starts it: a get waiting for its
	// server URL on stdin.
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		"sh", "-c", `ulimit -S -c 1024 || exit 97; exec "$0" get`, helper)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "CGR_STORE=file", "CGR_STORE_DIR=" + filepath.Join(home, "store")}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	proc := fmt.Sprintf("/proc/%d", cmd.Process.Pid)
	var limits, owner string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		comm, _ := os.ReadFile(proc + "/comm")
		if strings.TrimSpace(string(comm)) == "docker-credenti" { // exec'd: comm is cut to 15 bytes
			b, _ := os.ReadFile(proc + "/limits")
			limits = coreLimit(string(b))
			if fi, err := os.Stat(proc + "/environ"); err == nil {
				owner = fmt.Sprint(fi.Sys().(*syscall.Stat_t).Uid)
			}
			if limits == "0 0" && owner == "0" {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if limits != "0 0" {
		t.Errorf("a running helper's core file size limit is %q, want 0 (soft and hard)", limits)
	}
	if owner != "0" {
		t.Errorf("a running helper's /proc/<pid>/environ belongs to uid %s, not root: it is dumpable, so the user's other processes can read its memory", owner)
	}
}

// coreLimit is the soft and hard "Max core file size" of /proc/<pid>/limits.
func coreLimit(limits string) string {
	for _, l := range strings.Split(limits, "\n") {
		if strings.HasPrefix(l, "Max core file size") {
			f := strings.Fields(strings.TrimPrefix(l, "Max core file size"))
			if len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	return ""
}

// `doctor --image` against a registry that names someone else's token endpoint, or answers
// with terminal escapes: the helper's credential goes nowhere but the registry's own realm,
// and the registry's words are printed without control characters.
func TestSecurityDoctorImageHostileRegistry(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			mu.Lock()
			leaked = append(leaked, r.URL.String())
			mu.Unlock()
		}
		w.Write([]byte(`{"token":"collected"}`))
	}))
	defer collector.Close()
	elsewhere := strings.Replace(collector.URL, "127.0.0.1", "localhost", 1)
	foreign := hostileRegistry(t, func(self string) string { return elsewhere + "/token" }, nil)
	noisy := hostileRegistry(t, func(self string) string { return self + "/token" }, func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"down\\u001b]0;owned\\u0007 for\\u001b[2J maintenance\\u202e\"}]}"))
	})
	w := newWorld(t, emulator.Options{})
	w.env["CGR_REGISTRY"] = strings.Join([]string{w.emu.RegistryHost(), foreign, noisy}, ",")
	w.login()

	r := w.helper("", "doctor", "--image", foreign+"/acme.example/app:latest")
	if !strings.Contains(r.stdout, "is not its own (another host): the helper's credential was not sent there") {
		t.Errorf("doctor --image with a foreign realm:\n%s%s", r.stdout, r.stderr)
	}
	r = w.helper("", "doctor", "--image", noisy+"/acme.example/app:latest")
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07\u202e") || !strings.Contains(r.stdout, "down for maintenance") {
		t.Errorf("doctor --image with escapes in the registry's answer:\n%q", r.stdout)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) != 0 {
		t.Fatalf("the helper's credential reached %v", leaked)
	}
}

// hostileRegistry answers /v2/ with a Bearer challenge naming realm(self) and /token with
// token (a 200 with a token when nil); it returns its host:port.
func hostileRegistry(t *testing.T, realm func(self string) string, token func(w http.ResponseWriter)) string {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="cgr.dev"`, realm(srv.URL)))
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/token" && token != nil:
			token(w)
		default:
			w.Write([]byte(`{"token":"registry-token"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
