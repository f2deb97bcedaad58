package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every process start runs every package's init, and `get` is a process per pull. Our own
// packages keep their init small: nothing is compiled or built at init (a regexp compiled
// there costs about 13 KB and tens of µs on every pull; compile on first use instead). The
// measure is allocated bytes, which GODEBUG=inittrace reports exactly, not time.
func TestOurPackageInitsStaySmall(t *testing.T) {
	const maxBytes = 4096
	r := runCommand(t, append(os.Environ(), "GODEBUG=inittrace=1"), "", "", helperBin, "version")
	if r.code != 0 {
		t.Fatalf("version: exit %d: %s", r.code, r.stderr)
	}
	line := regexp.MustCompile(`^init (github\.com/cgrtools/docker-credential-cgr\S*) @\S+ ms, \S+ ms clock, (\d+) bytes, (\d+) allocs$`)
	seen := 0
	for _, l := range strings.Split(r.stderr, "\n") {
		m := line.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		seen++
		if b, _ := strconv.Atoi(m[2]); b > maxBytes {
			t.Errorf("package %s allocates %d bytes (%s allocs) at init, on every get; over %d: build it on first use", m[1], b, m[3], maxBytes)
		}
	}
	if seen < 5 {
		t.Fatalf("inittrace named %d of our packages; the trace format changed?\n%s", seen, r.stderr)
	}
}
