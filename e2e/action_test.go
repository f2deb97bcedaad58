package e2e

// The repository's GitHub Action (action.yml, composite), run as a runner runs it: each
// `run:` step through `bash --noprofile --norc -eo pipefail`, `${{ … }}` substituted as text,
// the runner's variables and its GITHUB_ENV, GITHUB_PATH and GITHUB_OUTPUT files between
// steps. A local server stands in for the release downloads (the freshly built binary in
// goreleaser's archive layout, with checksums.txt) and another for the Actions OIDC token
// endpoint, minting through the emulator.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// actionFile is what the runner reads of action.yml.
type actionFile struct {
	Inputs map[string]struct {
		Default  string `yaml:"default"`
		Required bool   `yaml:"required"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Value string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string       `yaml:"using"`
		Steps []actionStep `yaml:"steps"`
	} `yaml:"runs"`
}

type actionStep struct {
	ID    string            `yaml:"id"`
	Shell string            `yaml:"shell"`
	Run   string            `yaml:"run"`
	Env   map[string]string `yaml:"env"`
	If    string            `yaml:"if"`
	Uses  string            `yaml:"uses"`
}

// runner runs action.yml's steps as GitHub's runner does for a composite action.
type runner struct {
	t       *testing.T
	root    string            // the action's directory (github.action_path)
	env     map[string]string // the job's environment, GITHUB_ENV and GITHUB_PATH applied
	path    []string          // GITHUB_PATH entries, newest first
	temp    string            // RUNNER_TEMP
	outputs map[string]map[string]string
	logs    strings.Builder // every step's output, as the job log shows it
}

var exprRE = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// expand substitutes ${{ … }} as the runner does before a step starts (textually, before
// bash sees the script); an expression this runner does not emulate fails the test, so the
// action cannot drift into what is not tested.
func (r *runner) expand(s string, a *actionFile, inputs map[string]string) string {
	return exprRE.ReplaceAllStringFunc(s, func(m string) string {
		e := exprRE.FindStringSubmatch(m)[1]
		parts := strings.Split(e, ".")
		switch {
		case len(parts) == 2 && parts[0] == "inputs":
			in, ok := a.Inputs[parts[1]]
			if !ok {
				r.t.Fatalf("action.yml uses ${{ %s }}, an input it does not declare", e)
			}
			if v, ok := inputs[parts[1]]; ok {
				return v
			}
			return in.Default
		case len(parts) == 4 && parts[0] == "steps" && parts[2] == "outputs":
			return r.outputs[parts[1]][parts[3]]
		case e == "github.action_path":
			return r.root
		case e == "runner.temp":
			return r.temp
		}
		r.t.Fatalf("action.yml uses ${{ %s }}, which this test's runner does not emulate", e)
		return ""
	})
}

// environ is a step's process environment: the job's, PATH with GITHUB_PATH prepended, and
// the step's own env.
func (r *runner) environ(extra map[string]string) []string {
	env := map[string]string{}
	for k, v := range r.env {
		env[k] = v
	}
	if len(r.path) > 0 {
		env["PATH"] = strings.Join(r.path, ":") + ":" + env["PATH"]
	}
	for k, v := range extra {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// parseFileCommand reads a GITHUB_ENV or GITHUB_OUTPUT file: NAME=value lines and
// NAME<<DELIMITER blocks.
func parseFileCommand(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if k, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(k, "=") {
			var v []string
			for sc.Scan() && sc.Text() != delim {
				v = append(v, sc.Text())
			}
			out[k] = strings.Join(v, "\n")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is neither NAME=value nor NAME<<DELIMITER", filepath.Base(path), line)
		}
		out[k] = v
	}
	return out
}

// run runs the action with inputs; it returns the failing step's id ("" when all passed).
func (r *runner) run(inputs map[string]string) (failed string) {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.root, "action.yml"))
	if err != nil {
		r.t.Fatal(err)
	}
	var a actionFile
	if err := yaml.Unmarshal(b, &a); err != nil {
		r.t.Fatalf("action.yml: %v", err)
	}
	if a.Runs.Using != "composite" || len(a.Runs.Steps) == 0 {
		r.t.Fatalf("action.yml: runs.using %q with %d steps; want a composite action", a.Runs.Using, len(a.Runs.Steps))
	}
	for k := range inputs {
		if _, ok := a.Inputs[k]; !ok {
			r.t.Fatalf("input %q is not declared in action.yml", k)
		}
	}
	for name, in := range a.Inputs {
		if _, given := inputs[name]; in.Required && !given {
			r.t.Fatalf("required input %q not given", name)
		}
	}
	for i, st := range a.Runs.Steps {
		if st.Uses != "" || st.If != "" || st.Shell != "bash" || st.Run == "" {
			r.t.Fatalf("step %d (%s): uses %q, if %q, shell %q: only `run:` steps with `shell: bash` and no `if:` are emulated here", i, st.ID, st.Uses, st.If, st.Shell)
		}
		dir := filepath.Join(r.temp, "_runner_file_commands", fmt.Sprintf("step%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			r.t.Fatal(err)
		}
		files := map[string]string{}
		for _, f := range []string{"GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT"} {
			files[f] = filepath.Join(dir, strings.ToLower(f))
			if err := os.WriteFile(files[f], nil, 0o644); err != nil {
				r.t.Fatal(err)
			}
		}
		script := filepath.Join(dir, "script.sh")
		if err := os.WriteFile(script, []byte(r.expand(st.Run, &a, inputs)), 0o644); err != nil {
			r.t.Fatal(err)
		}
		stepEnv := map[string]string{}
		for k, v := range st.Env {
			stepEnv[k] = r.expand(v, &a, inputs)
		}
		for k, v := range files {
			stepEnv[k] = v
		}
		res := runCommand(r.t, r.environ(stepEnv), r.temp, "", "bash", "--noprofile", "--norc", "-eo", "pipefail", script)
		fmt.Fprintf(&r.logs, "== step %s (exit %d)\n%s%s", st.ID, res.code, res.stdout, res.stderr)
		// The runner applies a step's file commands whether or not it failed.
		for k, v := range parseFileCommand(r.t, files["GITHUB_ENV"]) {
			r.env[k] = v
		}
		pb, _ := os.ReadFile(files["GITHUB_PATH"])
		for _, p := range strings.Split(strings.TrimSpace(string(pb)), "\n") {
			if p != "" {
				r.path = append([]string{p}, r.path...)
			}
		}
		if st.ID != "" {
			r.outputs[st.ID] = parseFileCommand(r.t, files["GITHUB_OUTPUT"])
		}
		if res.code != 0 {
			return st.ID
		}
	}
	return ""
}

// step runs a command as a later step of the job: the job's environment after the action.
func (r *runner) step(name string, args ...string) result {
	r.t.Helper()
	return runCommand(r.t, r.environ(nil), r.temp, "", name, args...)
}

// releaseServer stands in for github.com/<owner>/<repo>/releases: /latest redirects to the
// tag, /download/<tag>/<asset> serves the archives of goreleaser's layout and checksums.txt.
type releaseServer struct {
	*httptest.Server
	tag       string
	asset     string
	files     map[string][]byte
	downloads atomic.Int32
	tamper    atomic.Bool // serve the archive with one byte more than checksums.txt says
}

// newReleaseServer builds the helper stamped with version (as goreleaser does) and serves it
// in the release archive for this machine's OS and architecture.
func newReleaseServer(t *testing.T, version string) *releaseServer {
	t.Helper()
	root, err := e2etest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "docker-credential-cgr")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, ".")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the release binary: %v\n%s", err, out)
	}
	var archive bytes.Buffer
	zw := gzip.NewWriter(&archive)
	tw := tar.NewWriter(zw)
	add := func(name, src string, mode int64) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	add("LICENSE", filepath.Join(root, "LICENSE"), 0o644)
	add("README.md", filepath.Join(root, "README.md"), 0o644)
	add("docker-credential-cgr", bin, 0o755)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	// goreleaser's archives.name_template and checksum file ("<sha256>  <name>").
	asset := fmt.Sprintf("docker-credential-cgr_%s_%s_%s.tar.gz", version, runtime.GOOS, runtime.GOARCH)
	sum := sha256.Sum256(archive.Bytes())
	rs := &releaseServer{tag: "v" + version, asset: asset, files: map[string][]byte{
		asset:           archive.Bytes(),
		"checksums.txt": fmt.Appendf(nil, "%s  %s\n%s  docker-credential-cgr_%s_windows_amd64.zip\n", hex.EncodeToString(sum[:]), asset, strings.Repeat("0", 64), version),
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /releases/latest", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/releases/tag/"+rs.tag, http.StatusFound)
	})
	mux.HandleFunc("GET /releases/tag/{tag}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<html>release %s</html>", r.PathValue("tag"))
	})
	mux.HandleFunc("GET /releases/download/{tag}/{file}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := rs.files[r.PathValue("file")]
		if r.PathValue("tag") != rs.tag || !ok {
			http.NotFound(w, r)
			return
		}
		rs.downloads.Add(1)
		if rs.tamper.Load() && r.PathValue("file") == rs.asset {
			b = append(append([]byte{}, b...), 0)
		}
		w.Write(b)
	})
	rs.Server = httptest.NewServer(mux)
	t.Cleanup(rs.Close)
	return rs
}

// actionsTokenServer stands in for the runner's OIDC endpoint: the request token as bearer,
// the audience as a query parameter, `{"value": "<jwt>"}` minted by the emulator's OIDC issuer.
func actionsTokenServer(t *testing.T, emu *emulator.Emulator, subject, requestToken string) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aud := r.URL.Query().Get("audience")
		if r.Header.Get("Authorization") != "Bearer "+requestToken || r.URL.Query().Get("api-version") == "" || aud == "" {
			http.Error(w, `{"message":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		hits.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"count": 1, "value": emu.MintOIDCToken(subject, aud, 5*time.Minute)})
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// actionJob is a fresh job on a Linux runner: HOME, RUNNER_TEMP, a PATH without the helper,
// the endpoints a runner gives a job with `permissions: id-token: write`, and CGR_ISSUER and
// CGR_API pointing at the emulator (as job-level `env:` would).
func actionJob(t *testing.T, emu *emulator.Emulator, tokenURL, requestToken string) *runner {
	t.Helper()
	root, err := e2etest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	home, temp := t.TempDir(), t.TempDir()
	arch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		t.Skipf("the action's test runs a Linux X64 or ARM64 runner; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	var path []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "docker-credential-cgr")); err != nil {
			path = append(path, d) // the helper comes from the action only
		}
	}
	env := map[string]string{
		"HOME": home, "PATH": strings.Join(path, ":"), "LANG": "C.UTF-8",
		"CI": "true", "GITHUB_ACTIONS": "true", "RUNNER_OS": "Linux", "RUNNER_ARCH": arch, "RUNNER_TEMP": temp,
		"GITHUB_ACTION_PATH": root, "GITHUB_WORKSPACE": home,
		"CGR_ISSUER": emu.IssuerURL(), "CGR_API": emu.APIURL(),
	}
	if tokenURL != "" {
		env["ACTIONS_ID_TOKEN_REQUEST_URL"] = tokenURL + "/_apis/pipelines/1/runs/1/idtoken?api-version=2.0"
		env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = requestToken
	}
	if v := os.Getenv("DOCKER_HOST"); v != "" {
		env["DOCKER_HOST"] = v
	}
	return &runner{t: t, root: root, env: env, temp: temp, outputs: map[string]map[string]string{}}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// The action's path end to end: refused without it; with it (latest release, an assumable
// identity), a docker pull of the private image works in a later step through the job's OIDC
// token, and nothing a log shows holds a token.
func TestActionPullsWithRunnerOIDC(t *testing.T) {
	need(t, "docker")
	need(t, "curl")
	dockerEngine(t)
	emu, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	const subject = "repo:cgrtools/demo:ref:refs/heads/main"
	issuer, _ := url.Parse(emu.IssuerURL())
	identity := emu.AddAssumableIdentity(emu.Org(), emu.OIDCIssuerURL(), subject, issuer.Host)
	requestToken := randomHex(t, 16)
	tokens, hits := actionsTokenServer(t, emu, subject, requestToken)
	rel := newReleaseServer(t, "9.9.9")
	job := actionJob(t, emu, tokens.URL, requestToken)
	img := emu.PrivateImage()
	t.Cleanup(func() { job.step("docker", "rmi", "-f", img) })

	job.step("docker", "rmi", "-f", img)
	if r := job.step("docker", "pull", img); r.code == 0 {
		t.Fatalf("docker pull %s worked before the action: the test proves nothing", img)
	}

	if failed := job.run(map[string]string{"identity": identity, "registry": emu.RegistryHost(), "release-url": rel.URL + "/releases"}); failed != "" {
		t.Fatalf("action step %s failed:\n%s", failed, job.logs.String())
	}
	t.Logf("action log:\n%s", job.logs.String())
	if v := job.outputs["install"]["version"]; v != "9.9.9" {
		t.Fatalf("output version %q, want the latest release 9.9.9", v)
	}
	if job.env["CGR_IDENTITY"] != identity || job.env["CGR_REGISTRY"] != emu.RegistryHost() {
		t.Fatalf("GITHUB_ENV did not carry CGR_IDENTITY and CGR_REGISTRY: %q, %q", job.env["CGR_IDENTITY"], job.env["CGR_REGISTRY"])
	}
	if got, err := filepath.EvalSymlinks(job.outputs["install"]["path"]); err != nil || !strings.HasPrefix(got, job.temp) {
		t.Fatalf("installed at %q (%v), want under RUNNER_TEMP", got, err)
	}

	r := job.step("docker", "pull", img)
	if r.code != 0 {
		t.Fatalf("docker pull %s after the action: exit %d: %s", img, r.code, r.stderr)
	}
	if hits.Load() == 0 || emu.Count("sts/exchange") == 0 {
		t.Fatalf("OIDC endpoint asked %d times, STS exchanges %d: the pull did not go through the job's OIDC token", hits.Load(), emu.Count("sts/exchange"))
	}
	if w := job.step("which", "docker-credential-cgr"); !strings.HasPrefix(strings.TrimSpace(w.stdout), job.temp) {
		t.Fatalf("a later step runs docker-credential-cgr from %q, not the action's install", w.stdout)
	}
	noJWTIn(t, "the action's log", job.logs.String())
	noJWTIn(t, "docker pull output", r.stdout+r.stderr)
	t.Logf("OIDC tokens asked %d, STS exchanges %d, release downloads %d", hits.Load(), emu.Count("sts/exchange"), rel.downloads.Load())
}

// A download whose checksum does not match is not installed; an identity without an OIDC
// endpoint (no `id-token: write`) and a malformed identity fail at set-up with one line.
func TestActionRefusesBadSetups(t *testing.T) {
	need(t, "curl")
	emu, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	rel := newReleaseServer(t, "9.9.9")
	id := emu.AddAssumableIdentity(emu.Org(), emu.OIDCIssuerURL(), "repo:x/y:ref:refs/heads/main", "aud")
	inputs := func(kv ...string) map[string]string {
		m := map[string]string{"release-url": rel.URL + "/releases", "registry": emu.RegistryHost(), "version": "v9.9.9"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	t.Run("checksum mismatch", func(t *testing.T) {
		rel.tamper.Store(true)
		defer rel.tamper.Store(false)
		job := actionJob(t, emu, "", "")
		if failed := job.run(inputs()); failed != "install" {
			t.Fatalf("a tampered archive: failed step %q, want install:\n%s", failed, job.logs.String())
		}
		if !strings.Contains(job.logs.String(), "checksums.txt of v9.9.9 says") {
			t.Fatalf("the failure does not say the checksum differs:\n%s", job.logs.String())
		}
		if _, err := os.Stat(filepath.Join(job.temp, "docker-credential-cgr", "bin", "docker-credential-cgr")); err == nil {
			t.Fatal("the tampered binary was installed")
		}
	})
	for _, c := range []struct{ name, identity, tokenURL, want string }{
		{"no id-token permission", id, "", "permissions: id-token: write"},
		{"malformed identity", "not-an-id\nCGR_ISSUER=https://evil.example", "http://127.0.0.1:1", "is not an assumable identity id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := actionJob(t, emu, c.tokenURL, "x")
			if failed := job.run(inputs("identity", c.identity)); failed != "configure" {
				t.Fatalf("failed step %q, want configure:\n%s", failed, job.logs.String())
			}
			if !strings.Contains(job.logs.String(), c.want) {
				t.Fatalf("log does not say %q:\n%s", c.want, job.logs.String())
			}
			if _, ok := job.env["CGR_IDENTITY"]; ok {
				t.Fatal("CGR_IDENTITY was exported by a failed set-up")
			}
		})
	}
}
