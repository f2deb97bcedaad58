package credhelper

import (
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

func settings(t testing.TB, registries string) config.Settings {
	t.Helper()
	env := map[string]string{"CGR_REGISTRY": registries, "HOME": t.TempDir()}
	s, err := config.Load(func(k string) string { return env[k] }, config.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServedHostAccepts(t *testing.T) {
	s := settings(t, "cgr.dev,127.0.0.1:5000,[::1]:5001,localhost:5002")
	for in, want := range map[string]string{
		"cgr.dev":                         "cgr.dev",
		"  cgr.dev\n":                     "cgr.dev",
		"https://cgr.dev":                 "cgr.dev",
		"https://cgr.dev/":                "cgr.dev",
		"https://cgr.dev/v2/":             "cgr.dev",
		"https://cgr.dev/v1/":             "cgr.dev",
		"cgr.dev/chainguard/static":       "cgr.dev",
		"cgr.dev/acme.example/app":        "cgr.dev",
		"CGR.DEV":                         "cgr.dev",
		"HTTPS://CGR.dev/v2/":             "cgr.dev",
		"//cgr.dev":                       "cgr.dev",
		"127.0.0.1:5000":                  "127.0.0.1:5000",
		"http://127.0.0.1:5000":           "127.0.0.1:5000",
		"https://127.0.0.1:5000/v2/":      "127.0.0.1:5000",
		"127.0.0.1:5000/acme.example/app": "127.0.0.1:5000",
		"http://[::1]:5001/v2/":           "[::1]:5001",
		"http://localhost:5002":           "localhost:5002",
	} {
		got, err := ServedHost(s, in)
		if err != nil || got != want {
			t.Errorf("ServedHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// Every one of these must be refused: a token handed to any of them could leak.
func TestServedHostRefusesHostile(t *testing.T) {
	s := settings(t, "cgr.dev,127.0.0.1:5000")
	hostile := []string{
		"",
		"   ",
		"cgr.dev.evil.com",
		"https://cgr.dev.evil.com/v2/",
		"evil.com/cgr.dev",
		"https://evil.com/cgr.dev",
		"https://cgr.dev@evil.com",
		"https://user:pass@cgr.dev",
		"cgr.dev@evil.com",
		"https://evil.com#@cgr.dev",
		"https://evil.com?@cgr.dev",
		"https://cgr.dev?x=1",
		"https://cgr.dev#frag",
		"evilcgr.dev",
		"cgr.dev.",
		"cgr.dev:443",
		"cgr.dev:8443",
		"http://cgr.dev",
		"ftp://cgr.dev",
		"unix:///cgr.dev",
		"file:///cgr.dev",
		"javascript:cgr.dev",
		"https://cgr%2Edev",
		"https://evil.com%2f@cgr.dev",
		"https://evil.com\\@cgr.dev",
		"https://cgr.dev\\@evil.com",
		"cgr.dev\x00evil.com",
		"cgr.dev\nevil.com",
		"cgr.dev evil.com",
		"cgr.dеv", // Cyrillic e
		"ｃｇｒ.dev",
		"\xff\xfecgr.dev",
		"https://[cgr.dev]",
		"https://cgr.dev:0x1bb",
		"https://127.0.0.1:5000@evil.com",
		"127.0.0.1:50000",
		"127.0.0.1",
		"http://127.0.0.2:5000",
		"https:///cgr.dev",
		"https://",
		"-cgr.dev",
		"cgr..dev",
	}
	if len(hostile) < 25 {
		t.Fatalf("only %d hostile forms", len(hostile))
	}
	for _, in := range hostile {
		if got, err := ServedHost(s, in); err == nil {
			t.Errorf("ServedHost(%q) = %q; want refused", in, got)
		}
	}
}

func FuzzServedHost(f *testing.F) {
	for _, seed := range []string{"cgr.dev", "https://cgr.dev/v2/", "cgr.dev.evil.com", "https://cgr.dev@evil.com", "evil.com/cgr.dev", "\xff"} {
		f.Add(seed)
	}
	s := settings(f, "cgr.dev")
	f.Fuzz(func(t *testing.T, in string) {
		host, err := ServedHost(s, in)
		if err == nil && host != "cgr.dev" {
			t.Fatalf("ServedHost(%q) = %q, served but not the served host", in, host)
		}
	})
}

// An IPv6 loopback issuer ([::1]) is a valid setting: its host must not break store keys.
func TestIPv6LoopbackIssuer(t *testing.T) {
	f := newFixture(t, nil)
	f.env["CGR_ISSUER"] = "http://[::1]:9"
	f.reload()
	if out, code := f.do("get", f.emu.RegistryHost()); code != 1 || out != notFound+"\n" {
		t.Fatalf("get with an IPv6 loopback issuer and nothing stored = %d %q; want the not-found line", code, out)
	}
}
