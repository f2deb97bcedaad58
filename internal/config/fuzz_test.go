package config

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfigFile: any config.yaml either loads into settings that keep the contract's
// rules (served hosts are hosts, endpoints https or loopback http, a known store) or fails
// with an error; it never panics and never yields half-valid settings.
func FuzzLoadConfigFile(f *testing.F) {
	f.Add([]byte("registry: cgr.dev,127.0.0.1:5000\nissuer: https://issuer.enforce.dev\nstore: file\nauto_login: false\n"))
	f.Add([]byte("issuer: http://evil.example\n"))
	// One directory per fuzzing process: inputs run one after another in a process.
	dir := f.TempDir()
	path := filepath.Join(dir, AppName, "config.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"XDG_CONFIG_HOME": dir, "HOME": dir}
		s, err := Load(func(k string) string { return env[k] }, Flags{})
		if err != nil {
			if len(s.Registries) != 0 || s.Issuer != "" {
				t.Fatalf("Load failed (%v) but returned settings", err)
			}
			return
		}
		if s.ConfigFile != path {
			t.Fatalf("ConfigFile %q, want %q", s.ConfigFile, path)
		}
		if len(s.Registries) == 0 {
			t.Fatal("no served registry")
		}
		for _, r := range s.Registries {
			if !validHost(r) {
				t.Fatalf("served registry %q is not a host", r)
			}
		}
		for _, e := range []string{s.Issuer, s.API} {
			u, err := url.Parse(e)
			if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && IsLoopback(u.Hostname())) {
				t.Fatalf("endpoint %q is neither https nor loopback http", e)
			}
		}
		switch s.Store {
		case "auto", "keychain", "file":
		default:
			t.Fatalf("store %q", s.Store)
		}
		if s.Audience == "" || s.StoreDir == "" {
			t.Fatalf("empty audience %q or store dir %q", s.Audience, s.StoreDir)
		}
	})
}
