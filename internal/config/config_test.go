package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// load writes config.yaml (when given) into a temp config dir and loads settings.
func load(t *testing.T, yaml string, env map[string]string, flags Flags) (Settings, error) {
	t.Helper()
	home := t.TempDir()
	if yaml != "" {
		dir := filepath.Join(home, ".config", AppName)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := map[string]string{"HOME": home}
	for k, v := range env {
		e[k] = v
	}
	return Load(func(k string) string { return e[k] }, flags)
}

func TestDefaults(t *testing.T) {
	s, err := load(t, "", nil, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Registries, ",") != "cgr.dev" || s.Issuer != DefaultIssuer || s.API != DefaultAPI ||
		s.Audience != "cgr.dev" || s.Store != "auto" || !s.AutoLogin ||
		!strings.HasSuffix(s.StoreDir, filepath.Join(".local", "share", AppName)) {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestPrecedenceFlagsEnvFile(t *testing.T) {
	yaml := "registry: file.example\nissuer: https://file.example\nstore: file\n"
	s, err := load(t, yaml, nil, Flags{})
	if err != nil || s.Registries[0] != "file.example" || s.Issuer != "https://file.example" || s.Store != "file" {
		t.Fatalf("file: %+v %v", s, err)
	}
	s, err = load(t, yaml, map[string]string{"CGR_REGISTRY": "env.example", "CGR_STORE": "keychain"}, Flags{})
	if err != nil || s.Registries[0] != "env.example" || s.Store != "keychain" || s.Issuer != "https://file.example" {
		t.Fatalf("env over file: %+v %v", s, err)
	}
	s, err = load(t, yaml, map[string]string{"CGR_REGISTRY": "env.example"}, Flags{Registry: "flag.example"})
	if err != nil || s.Registries[0] != "flag.example" {
		t.Fatalf("flag over env: %+v %v", s, err)
	}
}

func TestFileKeys(t *testing.T) {
	for _, yaml := range []string{
		"store_dir: /x\nauto_login: no\nregistry: [a.example, b.example:5000]\n",
		"# settings\n---\nstore_dir: '/x'   # where\nauto_login: \"off\"\nregistry:\n  - a.example\n  - \"b.example:5000\"\n",
		"store_dir: /x\r\nauto_login: false\r\nregistry: a.example,b.example:5000\r\n",
	} {
		s, err := load(t, yaml, nil, Flags{})
		if err != nil || s.StoreDir != "/x" || s.AutoLogin || strings.Join(s.Registries, ",") != "a.example,b.example:5000" {
			t.Errorf("%q: %+v %v", yaml, s, err)
		}
	}
}

// One spelling per key, and every error one line that names the file, the line and what to
// write instead: never a value picked by map order, never a decoder's type names.
func TestFileErrorsNameTheFix(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"regsitry: cgr.dev\n", `line 1: unknown key "regsitry" (known: `},
		{"store-dir: /x\n", `line 1: unknown key "store-dir": write it as store_dir`},
		{"CGR_STORE_DIR: /x\n", `unknown key "CGR_STORE_DIR": write it as store_dir`},
		{"registries: [a.example]\n", `unknown key "registries": write it as registry`},
		{"registry: a.example\nregistry: b.example\n", "line 2: registry is set twice (also on line 1); keep one"},
		{"store: keychian\n", `store in `},
		{"store: keychian\n", `config.yaml line 1: "keychian" is not one of auto, keychain, file`},
		{"auto_login: maybe\n", "auto_login in "},
		{"just some text\n", "line 1: not a `key: value` setting"},
		{"- a\n- b\n", "line 1: a list item outside a setting"},
		{"store:\n  file\n", "line 1: store: no value given"},
		{"issuer: [a, b]\n", "issuer: a single value, please"},
		{"issuer: {a: b}\n", "quote it"},
		{"browser: \"open\n", "unterminated"},
	} {
		_, err := load(t, c.yaml, nil, Flags{})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v; want one line with %q", c.yaml, err, c.want)
		}
	}
	// The environment's own errors name the variable, not the file.
	if _, err := load(t, "store: file\n", map[string]string{"CGR_STORE": "keychian"}, Flags{}); err == nil || !strings.HasPrefix(err.Error(), "CGR_STORE: ") {
		t.Errorf("CGR_STORE=keychian: %v", err)
	}
	if _, err := load(t, "", nil, Flags{Store: "keychian"}); err == nil || !strings.HasPrefix(err.Error(), "--store: ") {
		t.Errorf("--store keychian: %v", err)
	}
}

// A config dir that is a file holds no config.yaml: the file is optional, so nothing fails.
func TestConfigDirIsAFile(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".config"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".config", AppName), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(func(k string) string { return map[string]string{"HOME": home}[k] }, Flags{})
	if err != nil || s.ConfigFile != "" {
		t.Fatalf("config dir is a file: %v (%q)", err, s.ConfigFile)
	}
}

func TestBooleans(t *testing.T) {
	for v, want := range map[string]bool{"yes": true, "ON": true, "1": true, "true": true, "no": false, "off": false, "0": false, "False": false} {
		s, err := load(t, "", map[string]string{"CGR_AUTO_LOGIN": v}, Flags{})
		if err != nil || s.AutoLogin != want {
			t.Errorf("%q: %+v %v", v, s, err)
		}
	}
	if _, err := load(t, "", map[string]string{"CGR_AUTO_LOGIN": "maybe"}, Flags{}); err == nil {
		t.Error("CGR_AUTO_LOGIN=maybe accepted")
	}
}

func TestEndpoints(t *testing.T) {
	for _, ok := range []string{"https://issuer.example", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"} {
		if _, err := load(t, "", map[string]string{"CGR_ISSUER": ok}, Flags{}); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://issuer.example", "ftp://x", "issuer.example", "https://x/?q=1"} {
		if _, err := load(t, "", map[string]string{"CGR_ISSUER": bad}, Flags{}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	_, err := load(t, "", map[string]string{"CGR_API": "https://user:hunter2@api.example"}, Flags{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "user") {
		t.Errorf("credentials in a URL: %v; want refused without echoing them", err)
	}
}

// Without HOME (the kubelet may start plugins so), the store still lands in the account's
// home, never in the working directory.
func TestNoHome(t *testing.T) {
	s, err := Load(func(string) string { return "" }, Flags{})
	if err != nil || !filepath.IsAbs(s.StoreDir) {
		t.Fatalf("store dir %q (%v); want an absolute path", s.StoreDir, err)
	}
}

// config.yaml is honoured only when it, its directory and any link to it are the user's (or
// root's) and nobody else can write them (CONTRACT 3a): a foreign registry added by someone
// else would be handed the cgr.dev token. Otherwise one line says why and how to fix it.
func TestConfigFileOthersCouldWriteIsRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix owners")
	}
	setup := func(t *testing.T) (home, dir, file string) {
		home = t.TempDir()
		dir = filepath.Join(home, ".config", AppName)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		file = filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(file, []byte("registry: evil.example\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return home, dir, file
	}
	loadHome := func(home string) (Settings, error) {
		return Load(func(k string) string { return map[string]string{"HOME": home}[k] }, Flags{})
	}
	for _, c := range []struct {
		name string
		root bool // needs root to give a file away
		harm func(t *testing.T, dir, file string) string
	}{
		{"file writable by others", false, func(t *testing.T, dir, file string) string {
			os.Chmod(file, 0o666)
			return "is writable by others (mode 0666)"
		}},
		{"file writable by its group", false, func(t *testing.T, dir, file string) string {
			os.Chmod(file, 0o620)
			return "chmod go-w " + file
		}},
		{"directory writable by others", false, func(t *testing.T, dir, file string) string {
			os.Chmod(dir, 0o777)
			return "the directory holding it (" + dir + ") is writable by others"
		}},
		{"file of another user", true, func(t *testing.T, dir, file string) string {
			os.Chown(file, 65534, 65534)
			return "belongs to uid 65534"
		}},
		{"link of another user", true, func(t *testing.T, dir, file string) string {
			real := filepath.Join(t.TempDir(), "real.yaml")
			os.Rename(file, real)
			os.Symlink(real, file)
			os.Lchown(file, 65534, 65534)
			return "the link to it (" + file + ") belongs to uid 65534"
		}},
		{"link into a directory others can write", false, func(t *testing.T, dir, file string) string {
			shared := t.TempDir()
			os.Chmod(shared, 0o777)
			os.Rename(file, filepath.Join(shared, "real.yaml"))
			os.Symlink(filepath.Join(shared, "real.yaml"), file)
			return "(" + shared + ") is writable by others"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Geteuid() != 0 {
				t.Skip("needs root to give a file to another uid")
			}
			home, dir, file := setup(t)
			want := c.harm(t, dir, file)
			s, err := loadHome(home)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "is not used") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load = %+v, %v; want one line saying %q", s.Registries, err, want)
			}
		})
	}
	// The user's own, private or world-readable, directly or through the user's own link.
	home, dir, file := setup(t)
	os.Chmod(file, 0o644)
	os.Chmod(dir, 0o755)
	if s, err := loadHome(home); err != nil || s.Registries[0] != "evil.example" {
		t.Fatalf("the user's own config: %+v, %v", s, err)
	}
	real := filepath.Join(t.TempDir(), "dotfiles.yaml")
	os.Rename(file, real)
	os.Symlink(real, file)
	if s, err := loadHome(home); err != nil || s.Registries[0] != "evil.example" {
		t.Fatalf("the user's own linked config: %+v, %v", s, err)
	}
}
