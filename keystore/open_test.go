package keystore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
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

// launchedBy lists the processes, other than this one, whose environment holds mark: a
// dbus-launch or dbus-daemon started by this test inherits it. (Counting dbus processes
// system-wide would also count the private buses other packages' keyring tests start.)
func launchedBy(t *testing.T, mark string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/environ")
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("/proc/%d/", os.Getpid())
	var found []string
	for _, p := range procs {
		if strings.HasPrefix(p, self) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(mark)) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		found = append(found, strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return found
}

func TestAutoWithoutBusFallsBackToFileOnce(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the session-bus guard is Linux behaviour")
	}
	unsetenv(t, "DBUS_SESSION_BUS_ADDRESS")
	unsetenv(t, "XDG_RUNTIME_DIR")
	mark := "CGR_TEST_BUS_MARK=" + rand.Text()
	k, v, _ := strings.Cut(mark, "=")
	t.Setenv(k, v)

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
	if launched := launchedBy(t, mark); len(launched) > 0 {
		t.Fatalf("a bus was launched: %q", launched)
	}
}

func TestOpenUnknownBackend(t *testing.T) {
	if _, err := Open(context.Background(), Options{Backend: "vault", Dir: t.TempDir()}); err == nil {
		t.Fatal("unknown backend accepted")
	}
}

// A store dir that cannot be created (a read-only home, a hardened container) holds
// nothing: reads find nothing, so `get` answers not-found and public images still pull;
// writes fail with the reason; doctor can name it (CONTRACT 1.2).
func TestOpenUncreatableDirIsAnEmptyStore(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "docker-credential-cgr") // mkdir fails, even for root
	unsetenv(t, "DBUS_SESSION_BUS_ADDRESS")
	ctx := context.Background()
	for _, backend := range []string{"file", "auto"} {
		var notice bytes.Buffer
		s, err := Open(ctx, Options{Backend: backend, Dir: dir, Notice: &notice, Getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatalf("%s: Open: %v", backend, err)
		}
		if s.Kind() != "file" {
			continue // a keychain answered here: not this case
		}
		if _, err := s.Get(ctx, "session/x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: Get: %v, want not found", backend, err)
		}
		err = s.Set(ctx, "session/x", []byte("v"))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not a directory") || !strings.Contains(err.Error(), "CGR_STORE_DIR") {
			t.Fatalf("%s: Set: %v, want unavailable with the reason", backend, err)
		}
		if err := s.Delete(ctx, "session/x"); err != nil {
			t.Fatalf("%s: Delete: %v", backend, err)
		}
		if err := s.DeleteAll(ctx); err != nil {
			t.Fatalf("%s: DeleteAll: %v", backend, err)
		}
		if u := Unusable(s); u == nil || !strings.Contains(s.Describe(), "cannot be created") {
			t.Fatalf("%s: Unusable %v, Describe %q", backend, u, s.Describe())
		}
		if notice.Len() != 0 {
			t.Fatalf("%s: a notice that credentials are kept where nothing can be: %q", backend, notice.String())
		}
	}
	// A store that works is not unusable.
	s, err := Open(ctx, Options{Backend: "file", Dir: t.TempDir()})
	if err != nil || Unusable(s) != nil {
		t.Fatalf("a usable file store: %v, %v", err, Unusable(s))
	}
}
