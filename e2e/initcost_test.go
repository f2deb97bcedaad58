package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every process start runs every package's init, and `get` is a process per pull. So `get`
// itself (a served host, nothing stored) is traced. No package of ours is initialised at all:
// a package with any initialisation (a map literal, a fmt.Errorf, a sync.OnceValue, a regexp)
// allocates and touches its code's pages on every pull (six of ours made 46 allocations,
// 3.7 KB, before they had none). Build such values on first use (internal/lazy), or write
// them as a switch, a slice or a constant. All packages, dependencies included, allocate under
// 52 KB (48 KB measured once ours had none; 87 KB before go.yaml.in/yaml/v3 and net/http's
// bundled HTTP/2 left the binary). The measure is what GODEBUG=inittrace reports exactly,
// which packages and how many bytes; the time is in the bench (docs/BENCH.md), not here.
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
	seen, total := 0, 0
	for _, l := range strings.Split(r.stderr, "\n") {
		m := line.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		b, _ := strconv.Atoi(m[2])
		seen++
		total += b
		if strings.HasPrefix(m[1], "github.com/cgrtools/docker-credential-cgr") || m[1] == "main" {
			t.Errorf("package %s is initialised on every get (%d bytes, %s allocs): build its values on first use, or as constants", m[1], b, m[3])
		}
		if strings.Contains(m[1], "yaml") || strings.Contains(m[1], "http2") {
			t.Errorf("%s is initialised on every get (%d bytes): it should not be linked", m[1], b)
		}
	}
	if seen < 30 || !strings.Contains(r.stderr, "init net/http @") {
		t.Fatalf("inittrace named %d packages, net/http not among them; the trace format changed?\n%s", seen, r.stderr)
	}
	t.Logf("get: %d packages initialised, %d bytes in all", seen, total)
	if total > allMax {
		t.Errorf("package inits allocate %d bytes on every get; over %d", total, allMax)
	}
}
