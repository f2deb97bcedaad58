//go:build linux

package coredump

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// In a child process (Disable cannot be undone): after Disable the process is not dumpable
// and may write no core.
func TestDisable(t *testing.T) {
	if os.Getenv("CGR_COREDUMP_CHILD") == "1" {
		if err := Disable(); err != nil {
			t.Fatal(err)
		}
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil || d != 0 {
			t.Fatalf("PR_GET_DUMPABLE = %d, %v; want 0", d, err)
		}
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil || rl.Cur != 0 || rl.Max != 0 {
			t.Fatalf("RLIMIT_CORE = %+v, %v; want 0", rl, err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDisable$", "-test.v")
	cmd.Env = append(os.Environ(), "CGR_COREDUMP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDisable") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
