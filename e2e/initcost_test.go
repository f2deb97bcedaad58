package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every process start runs every package's init, and `get` is a process per pull. So `get`
// itself (a served host, nothing stored) is traced: our own packages allocate under 4 KB at
// init each (a regexp compiled there costs about 13 KB and tens of µs on every pull; compile
// on first use instead), and all packages, dependencies included, under 56 KB (52 KB measured
// after go.yaml.in/yaml/v3 and net/http's bundled HTTP/2 left the binary; 87 KB before). The
// measure is allocated bytes, which GODEBUG=inittrace reports exactly; the time is in the
// bench (docs/BENCH.md), not here.
func TestInitCostOfGet(t *testing.T) {
	const ourMax, allMax = 4 << 10, 56 << 10
	home := t.TempDir()
	env := append(os.Environ(), "GODEBUG=inittrace=1", "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home,
		"CGR_STORE=file", "CGR_REGISTRY=cgr.dev", "CGR_IDENTITY=", "CI=")
	r := runCommand(t, env, "", "cgr.dev", helperBin, "get")
	if r.code != 1 || !strings.Contains(r.stdout, notFoundLine) {
		t.Fatalf("get with nothing stored: exit %d, %q", r.code, r.stdout)
	}
	line := regexp.MustCompile(`^init (\S+) @\S+ ms, \S+ ms clock, (\d+) bytes, (\d+) allocs$`)
	seen, ours, total := 0, 0, 0
	for _, l := range strings.Split(r.stderr, "\n") {
		m := line.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		b, _ := strconv.Atoi(m[2])
		seen++
		total += b
		if strings.HasPrefix(m[1], "github.com/cgrtools/docker-credential-cgr") {
			ours++
			if b > ourMax {
				t.Errorf("package %s allocates %d bytes (%s allocs) at init, on every get; over %d: build it on first use", m[1], b, m[3], ourMax)
			}
		}
		if strings.Contains(m[1], "yaml") || strings.Contains(m[1], "http2") {
			t.Errorf("%s is initialised on every get (%d bytes): it should not be linked", m[1], b)
		}
	}
	if ours < 5 || seen < 30 {
		t.Fatalf("inittrace named %d packages, %d of ours; the trace format changed?\n%s", seen, ours, r.stderr)
	}
	t.Logf("get: %d packages initialised, %d bytes in all", seen, total)
	if total > allMax {
		t.Errorf("package inits allocate %d bytes on every get; over %d", total, allMax)
	}
}
