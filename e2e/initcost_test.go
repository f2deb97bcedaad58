package e2e

import (
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Every process start runs every package's init, and `get` is a process per pull. So `get`
// itself (a served host, nothing stored) is traced. No package of ours is initialised at all
// but internal/prefault, which must run before nearly all others (it maps the image that
// their initialisation runs in). A package with any initialisation (a map literal, a
// fmt.Errorf, a sync.OnceValue, a regexp) allocates and touches its code's pages on every
// pull (six of ours made 46 allocations, 3.7 KB, before they had none): build such values on
// first use (internal/lazy), or write them as a switch, a slice or a constant. All packages,
// dependencies included, allocate under 52 KB (48 KB measured once ours had none; 87 KB
// before go.yaml.in/yaml/v3 and net/http's bundled HTTP/2 left the binary). The measure is
// what GODEBUG=inittrace reports exactly, which packages and how many bytes; the time is in
// the bench (docs/BENCH.md), not here.
func TestInitCostOfGet(t *testing.T) {
	const allMax = 52 << 10
	home := t.TempDir()
	env := append(os.Environ(), "GODEBUG=inittrace=1", "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home,
		"CGR_STORE=file", "CGR_REGISTRY=cgr.dev", "CGR_IDENTITY=", "CI=")
	r := runCommand(t, env, "", "cgr.dev", helperBin, "get")
	if r.code != 1 || !strings.Contains(r.stdout, notFoundLine) {
		t.Fatalf("get with nothing stored: exit %d, %q", r.code, r.stdout)
	}
	line := regexp.MustCompile(`^init (\S+) @\S+ ms, \S+ ms clock, (\d+) bytes, (\d+) allocs$`)
	const prefaultPkg = "github.com/cgrtools/docker-credential-cgr/internal/prefault"
	seen, total, prefaultAt := 0, 0, 0
	for _, l := range strings.Split(r.stderr, "\n") {
		m := line.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		b, _ := strconv.Atoi(m[2])
		seen++
		total += b
		switch {
		case m[1] == prefaultPkg:
			// Its initialisation is its work, and it must come before the rest: it maps the
			// image the other packages' initialisation then runs in.
			prefaultAt = seen
			if b > 64 {
				t.Errorf("%s allocates %d bytes at init; it should allocate only its 64-byte mark", m[1], b)
			}
		case strings.HasPrefix(m[1], "github.com/cgrtools/docker-credential-cgr") || m[1] == "main":
			t.Errorf("package %s is initialised on every get (%d bytes, %s allocs): build its values on first use, or as constants", m[1], b, m[3])
		}
		if strings.Contains(m[1], "yaml") || strings.Contains(m[1], "http2") {
			t.Errorf("%s is initialised on every get (%d bytes): it should not be linked", m[1], b)
		}
	}
	if seen < 30 || !strings.Contains(r.stderr, "init net/http @") {
		t.Fatalf("inittrace named %d packages, net/http not among them; the trace format changed?\n%s", seen, r.stderr)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" && (prefaultAt == 0 || prefaultAt > 5) {
		t.Errorf("%s is initialised as package %d of %d (0: not at all); it must be among the first five", prefaultPkg, prefaultAt, seen)
	}
	t.Logf("get: %d packages initialised, %d bytes in all", seen, total)
	if total > allMax {
		t.Errorf("package inits allocate %d bytes on every get; over %d", total, allMax)
	}
}
