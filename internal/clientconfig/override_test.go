package clientconfig

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func auth(user, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
}

// binDir holds executables of the given names (their content is never run here).
func binDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func findingsOf(ws []Wiring, c Client) []Finding {
	for _, w := range ws {
		if w.Client == c {
			return w.Findings
		}
	}
	return nil
}

func TestOverrides(t *testing.T) {
	hosts := []string{"cgr.dev", "127.0.0.1:5000"}
	wired := `{"credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`
	tests := []struct {
		name   string
		env    map[string]string
		path   []string // executables on PATH
		files  map[string]string
		client Client
		want   []string // substrings of the one finding expected ("" entries: no finding)
		level  Level
		fix    string // substring of its fix
	}{
		{
			name:   "DOCKER_AUTH_CONFIG with a served host wins over credHelpers",
			env:    map[string]string{DockerAuthConfigVar: `{"auths":{"cgr.dev":{"auth":"` + auth("_token", "s3cr3t-tok") + `"}}}`},
			files:  map[string]string{".docker/config.json": wired},
			client: Docker,
			want:   []string{"DOCKER_AUTH_CONFIG holds a login for cgr.dev", "docker/cli#6156"},
			level:  Fail,
			fix:    "unset DOCKER_AUTH_CONFIG",
		},
		{
			name: "DOCKER_AUTH_CONFIG with other registries too: only the served host is dropped",
			env: map[string]string{DockerAuthConfigVar: `{"auths":{"ghcr.io":{"auth":"` + auth("u", "p") + `"},"https://cgr.dev":{"auth":"` + auth("_token", "s3cr3t-tok") + `"}}}`,
				"GITLAB_CI": "true"},
			files:  map[string]string{".docker/config.json": wired},
			client: Docker,
			want:   []string{"login for https://cgr.dev", "GitLab sets it"},
			level:  Fail,
			fix:    `jq -c 'del(.auths["https://cgr.dev"])'`,
		},
		{
			name: "DOCKER_AUTH_ORDER does not help",
			env: map[string]string{DockerAuthConfigVar: `{"auths":{"cgr.dev":{"auth":"` + auth("_token", "s3cr3t-tok") + `"}}}`,
				DockerAuthOrderVar: "config,env"},
			files:  map[string]string{".docker/config.json": wired},
			client: Docker,
			want:   []string{"DOCKER_AUTH_ORDER=config,env does not change that", "docker/cli#6171"},
			level:  Fail,
			fix:    "unset DOCKER_AUTH_CONFIG && unset DOCKER_AUTH_ORDER",
		},
		{
			name:   "DOCKER_AUTH_CONFIG for other registries only: nothing",
			env:    map[string]string{DockerAuthConfigVar: `{"auths":{"ghcr.io":{"auth":"` + auth("u", "p") + `"}}}`},
			files:  map[string]string{".docker/config.json": wired},
			client: Docker,
		},
		{
			name:   "DOCKER_AUTH_CONFIG that Docker cannot parse is ignored by Docker: nothing",
			env:    map[string]string{DockerAuthConfigVar: `{"auths":{"cgr.dev":{"username":"u","password":"p"}}}`},
			files:  map[string]string{".docker/config.json": wired},
			client: Docker,
		},
		{
			name:   "credsStore cgr with Docker Desktop installed: Desktop writes its store back",
			path:   []string{"docker-credential-desktop"},
			files:  map[string]string{".docker/config.json": `{"credsStore":"cgr"}`},
			client: Docker,
			want:   []string{`only through "credsStore": "cgr"`, "Docker Desktop writes its own credsStore back"},
			level:  Warn,
			fix:    "docker-credential-cgr configure --docker",
		},
		{
			name:   "credsStore cgr without Docker Desktop: nothing",
			files:  map[string]string{".docker/config.json": `{"credsStore":"cgr"}`},
			client: Docker,
		},
		{
			name:   "Desktop's credsStore beside credHelpers: deleting it does not last",
			path:   []string{"docker-credential-desktop"}, // Docker Desktop is installed
			files:  map[string]string{".docker/config.json": `{"credsStore":"desktop","credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			client: Docker,
			want:   []string{`credsStore "desktop"`, "deleting it does not last"},
			level:  Warn,
			fix:    "docker-credential-desktop erase",
		},
		{
			name:   "a credsStore no installed helper answers (Docker Desktop gone): crane stops at it",
			files:  map[string]string{".docker/config.json": `{"credsStore":"desktop","credHelpers":{"cgr.dev":"cgr","127.0.0.1:5000":"cgr"}}`},
			client: Docker,
			want:   []string{`credsStore "desktop" names docker-credential-desktop, which is not on PATH`, "executable file not found"},
			level:  Fail,
			fix:    "docker-credential-cgr configure --docker --fix-shadowing",
		},
		{
			name:   "helm unwired, Docker wired, a native store on PATH: helm 3.18+ never falls back",
			path:   []string{"docker-credential-secretservice"},
			files:  map[string]string{".docker/config.json": wired},
			client: Helm,
			want:   []string{"helm 3.18 and later ask docker-credential-secretservice", "stop at its error"},
			level:  Fail,
			fix:    "docker-credential-cgr configure --helm",
		},
		{
			name:   "helm unwired, Docker wired, no native store: helm falls back to Docker's file",
			files:  map[string]string{".docker/config.json": wired},
			client: Helm,
			want:   []string{"only through its fallback to Docker's config.json"},
			level:  Warn,
			fix:    "docker-credential-cgr configure --helm",
		},
		{
			name:   "helm's own file configures logins elsewhere: no native store is picked",
			path:   []string{"docker-credential-secretservice"},
			files:  map[string]string{".docker/config.json": wired, ".config/helm/registry/config.json": `{"auths":{"ghcr.io":{"auth":"` + auth("u", "p") + `"}}}`},
			client: Helm,
			want:   []string{"only through its fallback to Docker's config.json"},
			level:  Warn,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"PATH": binDir(t, tt.path...)}
			for k, v := range tt.env {
				env[k] = v
			}
			a := testAccount(t, env)
			for p, c := range tt.files {
				writeFile(t, filepath.Join(a.Home, p), c, 0o600)
			}
			var got []Finding
			for _, f := range findingsOf(Inspect(a, hosts, []Client{tt.client}), tt.client) {
				if tt.client == Helm && f.Host != "cgr.dev" {
					continue // one host is enough to judge
				}
				got = append(got, f)
			}
			if len(tt.want) == 0 {
				if len(got) != 0 {
					t.Fatalf("findings %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("findings %+v, want one", got)
			}
			f := got[0]
			for _, w := range tt.want {
				if !strings.Contains(f.Saw, w) {
					t.Errorf("finding %q lacks %q", f.Saw, w)
				}
			}
			if f.Level != tt.level {
				t.Errorf("level %s, want %s", f.Level, tt.level)
			}
			if !strings.Contains(f.Fix, tt.fix) {
				t.Errorf("fix %q lacks %q", f.Fix, tt.fix)
			}
			for _, secret := range []string{"s3cr3t-tok", auth("_token", "s3cr3t-tok"), auth("u", "p")} {
				if strings.Contains(f.Saw+f.Fix, secret) {
					t.Errorf("the finding shows a secret of DOCKER_AUTH_CONFIG: %s / %s", f.Saw, f.Fix)
				}
			}
		})
	}
}
