package clientconfig

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// testAccount is a user whose home and runtime dir are temp dirs; env holds its variables.
func testAccount(t *testing.T, env map[string]string) Account {
	t.Helper()
	home := t.TempDir()
	e := map[string]string{"XDG_RUNTIME_DIR": filepath.Join(home, "run")}
	for k, v := range env {
		e[k] = v
	}
	return Account{Name: "tester", UID: -1, GID: -1, Home: home, GOOS: "linux",
		Getenv: func(k string) string { return e[k] }}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

var hosts = []string{"cgr.dev", "127.0.0.1:5000"}

func TestEditsKeepEverythingElse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "absent",
			in:   "",
			want: "{\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\",\n\t\t\"127.0.0.1:5000\": \"cgr\"\n\t}\n}\n",
		},
		{
			name: "docker's own format, foreign keys in their order",
			in:   "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"eDp5\"\n\t\t}\n\t},\n\t\"zeta\": [1, 2],\n\t\"psFormat\": \"table {{.ID}}\",\n\t\"plugins\": {\"x\": {\"y\": \"z\"}}\n}",
			want: "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"eDp5\"\n\t\t}\n\t},\n\t\"zeta\": [1, 2],\n\t\"psFormat\": \"table {{.ID}}\",\n\t\"plugins\": {\"x\": {\"y\": \"z\"}},\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\",\n\t\t\"127.0.0.1:5000\": \"cgr\"\n\t}\n}",
		},
		{
			name: "partially wired, two-space indent, other helpers kept",
			in:   "{\n  \"credHelpers\": {\n    \"gcr.io\": \"gcloud\",\n    \"cgr.dev\": \"cgr\"\n  }\n}\n",
			want: "{\n  \"credHelpers\": {\n    \"gcr.io\": \"gcloud\",\n    \"cgr.dev\": \"cgr\",\n    \"127.0.0.1:5000\": \"cgr\"\n  }\n}\n",
		},
		{
			name: "empty credHelpers",
			in:   "{\n    \"credHelpers\": {},\n    \"a\": 1\n}",
			want: "{\n    \"credHelpers\": {\n        \"cgr.dev\": \"cgr\",\n        \"127.0.0.1:5000\": \"cgr\"\n    },\n    \"a\": 1\n}",
		},
		{
			name: "compact one-liner",
			in:   `{"auths":{},"credsStore":"desktop"}`,
			want: `{"auths":{},"credsStore":"desktop","credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`,
		},
		{
			name: "empty object",
			in:   "{}",
			want: "{\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\",\n\t\t\"127.0.0.1:5000\": \"cgr\"\n\t}\n}",
		},
		{
			name: "null credHelpers",
			in:   "{\"credHelpers\": null}",
			want: `{"credHelpers": {"cgr.dev": "cgr","127.0.0.1:5000": "cgr"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e edit
			got, err := ensureHelpers([]byte(tt.in), hosts, Helper, &e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON:\n%s", got)
			}
			again, err := ensureHelpers(got, hosts, Helper, &edit{})
			if err != nil || string(again) != string(got) {
				t.Fatalf("second run changed the bytes (err %v):\n%s", err, again)
			}
			if tt.in == "" || strings.Contains(tt.in, "credHelpers") {
				return
			}
			back, err := removeHelpers(got, hosts, Helper, &edit{})
			if err != nil {
				t.Fatal(err)
			}
			if string(back) != tt.in {
				t.Fatalf("remove did not restore the original:\n%q\nwant\n%q", back, tt.in)
			}
		})
	}
}

func TestRemoveOnlyOurs(t *testing.T) {
	in := "{\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\",\n\t\t\"127.0.0.1:5000\": \"other\",\n\t\t\"gcr.io\": \"gcloud\"\n\t}\n}"
	var e edit
	got, err := removeHelpers([]byte(in), hosts, Helper, &e)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n\t\"credHelpers\": {\n\t\t\"127.0.0.1:5000\": \"other\",\n\t\t\"gcr.io\": \"gcloud\"\n\t}\n}"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if !reflect.DeepEqual(e.removed, []string{"cgr.dev"}) {
		t.Fatalf("removed %v", e.removed)
	}
}

func TestConfigureFiles(t *testing.T) {
	a := testAccount(t, nil)
	docker := filepath.Join(a.Home, ".docker", "config.json")
	podman := filepath.Join(a.Home, ".config", "containers", "auth.json")
	helm := filepath.Join(a.Home, ".config", "helm", "registry", "config.json")
	orig := "{\n\t\"auths\": {},\n\t\"currentContext\": \"colima\",\n\t\"unknownFutureKey\": {\"b\": 2, \"a\": 1}\n}"
	writeFile(t, docker, orig, 0o644)

	ch := Configure(a, Options{Hosts: hosts})
	if len(ch) != 3 {
		t.Fatalf("changes: %+v", ch)
	}
	for i, want := range []struct {
		path   string
		action Action
	}{{docker, Updated}, {podman, Created}, {helm, Created}} {
		if ch[i].Path != want.path || ch[i].Action != want.action || !reflect.DeepEqual(ch[i].Added, hosts) {
			t.Errorf("change %d: %+v, want %s %s", i, ch[i], want.path, want.action)
		}
		if !strings.Contains(ch[i].Line(), "added cgr.dev, 127.0.0.1:5000") {
			t.Errorf("line: %s", ch[i].Line())
		}
	}
	if m := mode(t, docker); m != 0o644 {
		t.Errorf("docker config mode %o, want the original 0644", m)
	}
	for _, p := range []string{podman, helm} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s mode %o, want 0600", p, m)
		}
		if m := mode(t, filepath.Dir(p)); m != 0o700 {
			t.Errorf("%s dir mode %o, want 0700", p, m)
		}
	}
	for _, w := range Inspect(a, hosts, nil) {
		if len(w.Findings) > 0 || len(w.Wired) != 2 {
			t.Errorf("after configure %s: wired %v findings %+v", w.Client, w.Wired, w.Findings)
		}
	}

	// Second run: nothing changes, nothing is rewritten.
	before := map[string]os.FileInfo{}
	for _, p := range []string{docker, podman, helm} {
		before[p], _ = os.Stat(p)
	}
	for _, c := range Configure(a, Options{Hosts: hosts}) {
		if c.Action != Unchanged {
			t.Errorf("second run: %s", c.Line())
		}
		after, _ := os.Stat(c.Path)
		if !os.SameFile(before[c.Path], after) {
			t.Errorf("second run replaced %s", c.Path)
		}
	}

	// --remove restores the original bytes of the file we only added to.
	for _, c := range Configure(a, Options{Hosts: hosts, Remove: true}) {
		if c.Action != Updated || !reflect.DeepEqual(c.Removed, hosts) {
			t.Errorf("remove: %s", c.Line())
		}
	}
	if got := readFile(t, docker); got != orig {
		t.Fatalf("after --remove:\n%s\nwant\n%s", got, orig)
	}
	if m := mode(t, docker); m != 0o644 {
		t.Errorf("mode after remove %o", m)
	}
	if got := readFile(t, podman); got != "{}\n" {
		t.Errorf("created file after remove: %q", got)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	a := testAccount(t, nil)
	for _, c := range Configure(a, Options{Hosts: hosts, DryRun: true}) {
		if c.Action != Created || !strings.Contains(c.Line(), "would be created") {
			t.Errorf("dry run: %s", c.Line())
		}
		if _, err := os.Stat(c.Path); err == nil {
			t.Errorf("dry run wrote %s", c.Path)
		}
	}
}

func TestMalformedFileUntouched(t *testing.T) {
	a := testAccount(t, nil)
	docker := filepath.Join(a.Home, ".docker", "config.json")
	bad := "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\"auth\": \"x\"},\n\t}\n}\n"
	writeFile(t, docker, bad, 0o600)
	ch := Configure(a, Options{Hosts: hosts, Clients: []Client{Docker}})
	if len(ch) != 1 || ch[0].Action != Failed {
		t.Fatalf("%+v", ch)
	}
	line := ch[0].Line()
	if strings.Contains(line, "\n") || !strings.Contains(line, "line 4, column 2") || !strings.Contains(line, "left untouched") {
		t.Errorf("line: %q", line)
	}
	if got := readFile(t, docker); got != bad {
		t.Errorf("malformed file changed:\n%s", got)
	}
	w := Inspect(a, hosts, []Client{Docker, Containers})
	for _, x := range w {
		if len(x.Findings) == 0 || x.Findings[0].Level != Fail || !strings.Contains(x.Findings[0].Saw, "invalid JSON") {
			t.Errorf("%s: %+v", x.Client, x.Findings)
		}
	}
}

// A setting given twice (or in another case) is read by the clients from its last copy;
// configure refuses the file rather than edit a copy nobody reads, and doctor fails it.
func TestDuplicateKeysRefused(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		fix    bool
		want   []string // in the refusal, after the path
		remedy string   // in Inspect's fix
	}{
		{
			name: "credHelpers twice",
			doc:  `{"credHelpers":{},"credHelpers":{"cgr.dev":"other"}}`,
			want: []string{`"credHelpers" is given 2 times (line 1 column 2 and line 1 column 19)`, "read only the last", `merge them into one "credHelpers"`},
		},
		{
			name: "credHelpers in another case only",
			doc:  "{\n\t\"CredHelpers\": {\"cgr.dev\": \"other\"}\n}\n",
			want: []string{`"CredHelpers" (line 2) differs from "credHelpers" only in case`, `rename it "credHelpers"`},
		},
		{
			name: "credHelpers beside a copy in another case",
			doc:  "{\n\t\"credHelpers\": {\"cgr.dev\": \"cgr\"},\n\t\"CREDHELPERS\": {\"cgr.dev\": \"other\"}\n}\n",
			want: []string{`"credHelpers" is given 2 times (line 2 and line 3 as "CREDHELPERS")`, `merge them into one "credHelpers"`},
		},
		{
			name: "a served host twice in credHelpers",
			doc:  "{\"credHelpers\": {\n\"cgr.dev\": \"cgr\",\n\"cgr.dev\": \"other\"\n}}",
			want: []string{`"cgr.dev" is given 2 times in "credHelpers" (line 2 and line 3)`, "keep one of them"},
		},
		{
			name: "a served host twice in auths",
			doc:  `{"auths":{"cgr.dev":{"auth":"eDp5"},"ghcr.io":{},"cgr.dev":{}}}`,
			fix:  true,
			want: []string{`"cgr.dev" is given 2 times in "auths"`},
		},
		{
			name: "credsStore twice",
			doc:  `{"credsStore":"desktop","credsStore":""}`,
			want: []string{`"credsStore" is given 2 times`},
		},
		{
			name: "auths in another case",
			doc:  `{"Auths":{}}`,
			want: []string{`"Auths" (line 1) differs from "auths" only in case`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAccount(t, nil)
			docker := filepath.Join(a.Home, ".docker", "config.json")
			writeFile(t, docker, tt.doc, 0o600)
			for _, remove := range []bool{false, true} {
				ch := Configure(a, Options{Hosts: hosts, Clients: []Client{Docker}, Remove: remove, FixShadowing: tt.fix && !remove})
				if len(ch) != 1 || ch[0].Action != Failed {
					t.Fatalf("remove=%v: %+v", remove, ch)
				}
				line := ch[0].Line()
				if strings.Contains(line, "\n") || !strings.HasPrefix(line, docker+": ") || !strings.HasSuffix(line, "then run `docker-credential-cgr configure` again; left untouched") {
					t.Errorf("refusal line: %q", line)
				}
				for _, w := range tt.want {
					if !strings.Contains(line, w) {
						t.Errorf("refusal line %q does not say %q", line, w)
					}
				}
				if got := readFile(t, docker); got != tt.doc {
					t.Fatalf("refused file changed:\n%s", got)
				}
			}
			w := Inspect(a, hosts, []Client{Docker})
			if len(w) != 1 || len(w[0].Findings) == 0 {
				t.Fatalf("Inspect: %+v", w)
			}
			f := w[0].Findings[0]
			if f.Level != Fail || f.Path != docker || !strings.Contains(f.Saw, tt.want[0]) ||
				!strings.Contains(f.Fix, docker) || !strings.Contains(f.Fix, "configure") {
				t.Errorf("Inspect finding: %+v", f)
			}
		})
	}
}

// Duplicates the clients agree on (a key the helper does not use, another registry's
// entry) do not stop configure; their bytes stay as they are.
func TestDuplicateKeysElsewhereKept(t *testing.T) {
	for _, doc := range []string{
		`{"psFormat":"a","psFormat":"b"}`,
		`{"credHelpers":{"gcr.io":"gcloud","gcr.io":"gcr"}}`,
		`{"auths":{"ghcr.io":{"auth":"eDp5"},"ghcr.io":{}},"plugins":{"x":{"k":"1","k":"2"}}}`,
	} {
		a := testAccount(t, nil)
		docker := filepath.Join(a.Home, ".docker", "config.json")
		writeFile(t, docker, doc, 0o600)
		if ch := Configure(a, Options{Hosts: hosts, Clients: []Client{Docker}, FixShadowing: true}); ch[0].Action != Updated {
			t.Fatalf("%s: %s", doc, ch[0].Line())
		}
		if w := Inspect(a, hosts, []Client{Docker}); len(w[0].Findings) != 0 || len(w[0].Wired) != 2 {
			t.Errorf("%s: after configure: %+v", doc, w[0])
		}
		if ch := Configure(a, Options{Hosts: hosts, Clients: []Client{Docker}, Remove: true}); ch[0].Action != Updated {
			t.Fatalf("%s: --remove: %s", doc, ch[0].Line())
		}
		if got := readFile(t, docker); got != doc {
			t.Errorf("configure then --remove:\n%s\nwant\n%s", got, doc)
		}
	}
}

// ~/.dockercfg is itself an auths map: a served host twice in it is refused by doctor too.
func TestDuplicateKeysLegacyDockercfg(t *testing.T) {
	a := testAccount(t, nil)
	cfg := filepath.Join(a.Home, ".dockercfg")
	writeFile(t, cfg, `{"cgr.dev":{"auth":"eDp5"},"https://cgr.dev":{},"cgr.dev":{}}`, 0o600)
	w := Inspect(a, hosts, []Client{Containers})
	found := false
	for _, f := range w[0].Findings {
		found = found || f.Path == cfg && f.Level == Fail && strings.Contains(f.Saw, `"cgr.dev" is given 2 times (`) &&
			!strings.Contains(f.Saw, "stop at this error")
	}
	if !found {
		t.Errorf("no finding for the duplicate in %s: %+v", cfg, w[0].Findings)
	}
}

func TestShadowing(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string // relative to home
		client  Client
		want    []string // substrings of findings, in order
		levels  []Level
		path    []string          // executables on PATH
		fixed   map[string]string // file → content after configure --fix-shadowing
		wiredOK bool              // after the fix, every host wired and no finding
	}{
		{
			name:   "docker: static auths beside credHelpers is stale, not shadowing",
			client: Docker,
			files: map[string]string{".docker/config.json": `{"auths":{"cgr.dev":{"auth":"X3Rva2VuOnNlY3JldA=="},"ghcr.io":{"auth":"eDp5"}},` +
				`"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			want:    []string{`auths["cgr.dev"] holds a static secret; unused`},
			levels:  []Level{Warn},
			fixed:   map[string]string{".docker/config.json": `{"auths":{"ghcr.io":{"auth":"eDp5"}},"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			wiredOK: true,
		},
		{
			name:    "docker: repository key shadows for crane",
			client:  Docker,
			files:   map[string]string{".docker/config.json": `{"auths":{"cgr.dev/acme/app":{"password":"p"}, "https://127.0.0.1:5000/v1/":{}},"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			want:    []string{`crane, ko and cosign look up the repository`},
			levels:  []Level{Fail},
			fixed:   map[string]string{".docker/config.json": `{"auths":{"https://127.0.0.1:5000/v1/":{}},"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			wiredOK: true,
		},
		{
			name:   "docker: a secret field in another case is still a secret (Docker reads \"Auth\")",
			client: Docker,
			files: map[string]string{".docker/config.json": `{"auths":{"cgr.dev":{"Auth":"X3Rva2VuOnNlY3JldA=="}},` +
				`"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			want:   []string{`auths["cgr.dev"] holds a static secret; unused`},
			levels: []Level{Warn},
		},
		{
			name:   "docker: credsStore noted",
			client: Docker,
			path:   []string{"docker-credential-desktop"},
			files:  map[string]string{".docker/config.json": `{"credsStore":"desktop","credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			want:   []string{`credsStore "desktop"`},
			levels: []Level{Warn},
		},
		{
			name:   "docker: a credsStore whose helper is not installed, deleted by --fix-shadowing",
			client: Docker,
			files:  map[string]string{".docker/config.json": `{"credsStore":"desktop","credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			want:   []string{`credsStore "desktop" names docker-credential-desktop, which is not on PATH`},
			levels: []Level{Fail},
			fixed:  map[string]string{".docker/config.json": `{"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
		},
		{
			name:   "containers: podman login in the runtime file wins over ~/.config",
			client: Containers,
			files: map[string]string{
				"run/containers/auth.json":     `{"auths":{"cgr.dev":{"auth":"X3Rva2VuOnNlY3JldA=="}}}`,
				".config/containers/auth.json": `{"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`,
			},
			want:   []string{`podman, skopeo and buildah read this file first`},
			levels: []Level{Fail},
			fixed: map[string]string{
				"run/containers/auth.json":     "{\"auths\":{},\"credHelpers\":{\"cgr.dev\":\"cgr\",\"127.0.0.1:5000\":\"cgr\"}}",
				".config/containers/auth.json": `{"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`,
			},
			wiredOK: true,
		},
		{
			name:   "docker: the helper as the global credsStore is wired",
			client: Docker,
			files:  map[string]string{".docker/config.json": `{"credsStore":"cgr"}`},
		},
		{
			name:   "containers: the helper as credsStore is wired",
			client: Containers,
			files:  map[string]string{".config/containers/auth.json": `{"credsStore":"cgr"}`},
		},
		{
			name:   "containers: docker config read last is enough",
			client: Containers,
			files:  map[string]string{".docker/config.json": `{"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
		},
		{
			name:   "containers: another helper",
			client: Containers,
			files:  map[string]string{".config/containers/auth.json": `{"credHelpers":{"cgr.dev":"other","127.0.0.1:5000":"cgr"}}`},
			want:   []string{`credHelpers sends cgr.dev to docker-credential-other`},
			levels: []Level{Fail},
		},
		{
			name:   "helm unwired",
			client: Helm,
			files:  map[string]string{".config/helm/registry/config.json": `{"auths":{}}`},
			want:   []string{"no credHelpers entry for cgr.dev", "no credHelpers entry for 127.0.0.1:5000"},
			levels: []Level{Fail, Fail},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAccount(t, map[string]string{"PATH": binDir(t, tt.path...)})
			for p, c := range tt.files {
				writeFile(t, filepath.Join(a.Home, p), c, 0o600)
			}
			w := Inspect(a, hosts, []Client{tt.client})
			if len(w) != 1 {
				t.Fatal(w)
			}
			if len(w[0].Findings) != len(tt.want) {
				t.Fatalf("findings %+v, want %v", w[0].Findings, tt.want)
			}
			for i, f := range w[0].Findings {
				if !strings.Contains(f.Saw, tt.want[i]) || f.Level != tt.levels[i] || f.Fix == "" {
					t.Errorf("finding %d: %+v, want %q (%s)", i, f, tt.want[i], tt.levels[i])
				}
			}
			if tt.fixed == nil {
				return
			}
			for _, c := range Configure(a, Options{Hosts: hosts, Clients: []Client{tt.client}, FixShadowing: true}) {
				if c.Action == Failed {
					t.Fatal(c.Line())
				}
			}
			for p, want := range tt.fixed {
				if got := readFile(t, filepath.Join(a.Home, p)); got != want {
					t.Errorf("%s after fix:\n%s\nwant\n%s", p, got, want)
				}
			}
			if tt.wiredOK {
				w := Inspect(a, hosts, []Client{tt.client})
				if len(w[0].Findings) != 0 || len(w[0].Wired) != 2 {
					t.Errorf("after fix: %+v", w[0])
				}
			}
		})
	}
}

func TestEnvPaths(t *testing.T) {
	dir := t.TempDir()
	a := testAccount(t, map[string]string{
		"DOCKER_CONFIG":        filepath.Join(dir, "d"),
		"REGISTRY_AUTH_FILE":   filepath.Join(dir, "c", "auth.json"),
		"HELM_REGISTRY_CONFIG": filepath.Join(dir, "h.json"),
	})
	var got []string
	for _, tg := range Targets(a, AllClients) {
		got = append(got, tg.Path)
	}
	want := []string{filepath.Join(dir, "d", "config.json"), filepath.Join(dir, "c", "auth.json"), filepath.Join(dir, "h.json")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	if o := ContainersSearchOrder(a); !reflect.DeepEqual(o, want[1:2]) {
		t.Errorf("with REGISTRY_AUTH_FILE the search order is %v", o)
	}
}

func TestSymlinkedConfigFollowed(t *testing.T) {
	a := testAccount(t, nil)
	real := filepath.Join(a.Home, "dotfiles", "docker.json")
	writeFile(t, real, `{"auths":{}}`, 0o600)
	link := filepath.Join(a.Home, ".docker", "config.json")
	os.MkdirAll(filepath.Dir(link), 0o700)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	Configure(a, Options{Hosts: hosts, Clients: []Client{Docker}})
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the symlink was replaced")
	}
	if !strings.Contains(readFile(t, real), `"cgr.dev":"cgr"`) {
		t.Error("the link's target was not updated")
	}
}

// Root writes only through directories and links that root owns and nobody else can write:
// a user who owns a directory or a link on the way would choose where root creates or
// rewrites a file (under sudo, the user's own files are written by the user). A root-owned
// link (root's dotfiles) is still followed.
func TestRootWritesNoPathAnotherUserSteers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the rule is root's")
	}
	const uid = 4242
	rootOnly := t.TempDir() // a place the user could not write
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, a Account) (client Client, want string)
	}{
		{"a directory of the user's", func(t *testing.T, a Account) (Client, string) {
			os.MkdirAll(filepath.Join(a.Home, ".docker"), 0o700)
			os.Chown(filepath.Join(a.Home, ".docker"), uid, uid)
			return Docker, "belongs to uid 4242"
		}},
		{"a link of the user's into a root-only place", func(t *testing.T, a Account) (Client, string) {
			link := filepath.Join(a.Home, ".docker", "config.json")
			os.MkdirAll(filepath.Dir(link), 0o700)
			if err := os.Symlink(filepath.Join(rootOnly, "created-by-root.json"), link); err != nil {
				t.Fatal(err)
			}
			os.Lchown(link, uid, uid)
			return Docker, "link owned by uid 4242"
		}},
		{"a directory others can write", func(t *testing.T, a Account) (Client, string) {
			dir := filepath.Join(a.Home, ".config", "helm", "registry")
			os.MkdirAll(dir, 0o700)
			os.Chmod(filepath.Join(a.Home, ".config"), 0o777)
			return Helm, "writable by others"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := testAccount(t, nil)
			client, want := c.setup(t, a)
			changes := Configure(a, Options{Hosts: hosts, Clients: []Client{client}})
			if len(changes) != 1 || changes[0].Action != Failed || !strings.Contains(changes[0].Error, want) {
				t.Fatalf("changes %+v, want one failure saying %q", changes, want)
			}
			if entries, _ := os.ReadDir(rootOnly); len(entries) != 0 {
				t.Fatalf("root wrote through the user's link: %v", entries)
			}
			filepath.Walk(a.Home, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("root wrote %s", p)
				}
				return nil
			})
		})
	}
	// Root's own link to root's own dotfiles: followed, as Docker does.
	a := testAccount(t, nil)
	real := filepath.Join(rootOnly, "dotfiles", "docker.json")
	writeFile(t, real, `{"auths":{}}`, 0o600)
	link := filepath.Join(a.Home, ".docker", "config.json")
	os.MkdirAll(filepath.Dir(link), 0o700)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if c := Configure(a, Options{Hosts: hosts, Clients: []Client{Docker}}); c[0].Action != Updated || !strings.Contains(readFile(t, real), `"cgr.dev":"cgr"`) {
		t.Fatalf("root's own link: %+v", c)
	}
}

// A user without a session runtime dir whose /run/containers/<uid> lies in a directory the
// user cannot enter: podman stops at that file for every image; the finding says so and
// how to make podman read the file configure wires instead ("fix or move" it, the generic
// advice, is impossible for the user).
func TestContainersRuntimeFileBlocked(t *testing.T) {
	a := testAccount(t, map[string]string{"XDG_RUNTIME_DIR": ""})
	primary := containersPrimary(a)
	if !strings.HasPrefix(primary, "/run/containers/") {
		t.Fatalf("primary %s", primary)
	}
	read := func(p string, legacy bool) cachedFile {
		if p == primary {
			return cachedFile{err: &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}}
		}
		return cachedFile{}
	}
	w := inspectContainers(a, hosts, read)
	var got *Finding
	for i, f := range w.Findings {
		if f.Path == primary {
			got = &w.Findings[i]
		}
	}
	persistent := filepath.Join(a.Home, ".config", "containers", "auth.json")
	if got == nil || got.Level != Fail || !strings.Contains(got.Saw, "for every image") ||
		got.Fix != "export REGISTRY_AUTH_FILE="+persistent+"   # in your shell profile: then they read only the file configure wires; or log in through a session that creates /run/user/<uid>" {
		t.Fatalf("findings %+v", w.Findings)
	}
	// With REGISTRY_AUTH_FILE as the fix says, podman reads that file alone, and configure
	// wires it: nothing left in the way.
	b := testAccount(t, map[string]string{"XDG_RUNTIME_DIR": "", "REGISTRY_AUTH_FILE": persistent})
	Configure(b, Options{Hosts: hosts, Clients: []Client{Containers}})
	for _, w := range Inspect(b, hosts, []Client{Containers}) {
		if len(w.Findings) != 0 || len(w.Wired) != len(hosts) {
			t.Fatalf("after the fix: %+v", w)
		}
	}
}

func TestSecurePath(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sudoers"), "Defaults\tenv_reset\nDefaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/bin\"\n@includedir "+filepath.Join(dir, "d")+"\n", 0o440)
	writeFile(t, filepath.Join(dir, "d", "10-path"), "Defaults secure_path = /opt/bin:/usr/bin\n", 0o440)
	writeFile(t, filepath.Join(dir, "d", "README.txt"), "Defaults secure_path=/ignored\n", 0o440)
	if p, ok := SecurePath(filepath.Join(dir, "sudoers")); !ok || p != "/opt/bin:/usr/bin" {
		t.Errorf("SecurePath = %q, %v", p, ok)
	}
	if p, ok := SecurePath(filepath.Join(dir, "missing")); ok || p != DefaultSecurePath {
		t.Errorf("missing sudoers: %q, %v", p, ok)
	}

	bin := filepath.Join(dir, "bin")
	writeFile(t, filepath.Join(bin, HelperBinary), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(dir, "sudoers2"), "Defaults secure_path=\"/nonexistent\"\n", 0o440)
	r := ReachHelper(func(k string) string { return map[string]string{"PATH": bin}[k] }, false, "", "/x/"+HelperBinary, "")
	if len(r) != 1 || r[0].Found == "" || r[0].Fix != "" {
		t.Errorf("user PATH: %+v", r)
	}
	r = ReachHelper(func(string) string { return "" }, true, filepath.Join(dir, "sudoers2"), "/home/a/go/bin/"+HelperBinary, dir)
	if r[0].Found != "" || r[0].Fix != "sudo install -m 0755 /home/a/go/bin/docker-credential-cgr /usr/local/bin/docker-credential-cgr" {
		t.Errorf("secure_path: %+v", r[0])
	}
}
