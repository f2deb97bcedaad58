package keystore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// unsetenv clears a variable for one test and restores it afterwards.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "")
	os.Unsetenv(k)
}

// busProcesses counts running dbus-daemon and dbus-launch processes.
func busProcesses(t *testing.T) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-c", "-f", "dbus-daemon|dbus-launch").Output()
	n := 0
	for _, c := range strings.TrimSpace(string(out)) {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestAutoWithoutBusFallsBackToFileOnce(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the session-bus guard is Linux behaviour")
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("pgrep not installed")
	}
	unsetenv(t, "DBUS_SESSION_BUS_ADDRESS")
	unsetenv(t, "XDG_RUNTIME_DIR")
	before := busProcesses(t)

	dir := filepath.Join(t.TempDir(), "store")
	var notice bytes.Buffer
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		s, err := Open(ctx, Options{Backend: "auto", Dir: dir, Notice: &notice})
		if err != nil {
			t.Fatal(err)
		}
		if s.Kind() != "file" {
			t.Fatalf("auto without a bus chose %s", s.Describe())
		}
	}
	if got := strings.Count(notice.String(), "\n"); got != 1 {
		t.Fatalf("notice printed %d times, want once: %q", got, notice.String())
	}
	if !strings.Contains(notice.String(), dir) || !strings.Contains(notice.String(), "CGR_STORE") {
		t.Fatalf("notice does not say where and how: %q", notice.String())
	}
	if _, err := Open(ctx, Options{Backend: "keychain", Dir: dir}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("keychain without a bus: %v, want ErrUnavailable", err)
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		t.Fatal("DBUS_SESSION_BUS_ADDRESS was set without a bus")
	}
	if after := busProcesses(t); after != before {
		t.Fatalf("dbus processes %d before, %d after: a bus was launched", before, after)
	}
}

func TestOpenUnknownBackend(t *testing.T) {
	if _, err := Open(context.Background(), Options{Backend: "vault", Dir: t.TempDir()}); err == nil {
		t.Fatal("unknown backend accepted")
	}
}
