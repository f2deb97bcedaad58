package credhelper

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// hostileInline are hostile forms that cannot sit on a line of
// testdata/hostile-server-urls.txt: blank, control characters, invalid UTF-8.
var hostileInline = []string{
	"",
	"   ",
	"cgr.dev\x00evil.com",
	"cgr.dev\nevil.com",
	"cgr.dev\tevil.com",
	"\xff\xfecgr.dev",
}

// hostileServerURLs is every server URL that must never get a credential while the served
// hosts are cgr.dev and 127.0.0.1:5000: the shared file (the root package's process test reads
// it too) and the inline forms.
func hostileServerURLs(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hostile-server-urls.txt"))
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
		t.Fatalf("only %d hostile forms in the shared file", len(forms))
	}
	return append(forms, hostileInline...)
}

// Every one of these must be refused: a token handed to any of them could leak.
func TestServedHostRefusesHostile(t *testing.T) {
	s := settings(t, "cgr.dev,127.0.0.1:5000")
	for _, in := range hostileServerURLs(t) {
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

// validHost is the grammar it replaced, written out: it agrees with that regexp on every input.
func FuzzValidHostMatchesGrammar(f *testing.F) {
	re := regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$`)
	for _, s := range []string{"cgr.dev", "127.0.0.1:5000", "[::1]:5000", "[::1]", "a", "-a", "a-", "a..b", "a:", ":1", "a:123456", "[]", "[::1", "::1", "A.dev", "a_b", "[::1]:", "a:1:2", "[::1]]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validHost(s), re.MatchString(s); got != want {
			t.Fatalf("validHost(%q) = %v; the grammar says %v", s, got, want)
		}
	})
}
