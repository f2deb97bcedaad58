package keystore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv selects a helper mode: the test binary re-runs itself as another process
// (concurrency, crash and sudo tests need real processes).
const helperEnv = "CGR_KEYSTORE_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

func runHelper(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := os.Getenv("CGR_HELPER_DIR")
	var err error
	switch mode {
	case "stress":
		err = helperStress(ctx, dir, os.Getenv("CGR_HELPER_ID"), atoi(os.Getenv("CGR_HELPER_N")))
	case "writer":
		err = helperWriter(ctx, dir)
	case "locker":
		err = helperLocker(ctx, dir, atoi(os.Getenv("CGR_HELPER_N")))
	case "tempholder":
		err = helperTempHolder(dir)
	case "sudo":
		return helperSudo(ctx)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// helperStress interleaves Set/Get/Delete on its own keys and increments a shared counter
// under Lock; the parent checks that no increment was lost.
func helperStress(ctx context.Context, dir, id string, n int) error {
	s, err := Open(ctx, Options{Backend: "file", Dir: dir})
	if err != nil {
		return err
	}
	own := "own/" + id
	for i := 0; i < n; i++ {
		want := bytes.Repeat([]byte(fmt.Sprintf("%s-%d;", id, i)), 50+i%200)
		if err := s.Set(ctx, own, want); err != nil {
			return err
		}
		got, err := s.Get(ctx, own)
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("own key: got %d bytes, err %v, want %d bytes", len(got), err, len(want))
		}
		if i%3 == 0 {
			if err := s.Delete(ctx, own); err != nil {
				return err
			}
			if _, err := s.Get(ctx, own); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("after delete: %v", err)
			}
		}
		// Unlocked read of the shared key: whatever it holds must be a whole value.
		if v, err := s.Get(ctx, "shared/counter"); err == nil {
			if _, err := parseCounter(v); err != nil {
				return fmt.Errorf("torn shared value: %v", err)
			}
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		unlock, err := Lock(ctx, dir, "counter")
		if err != nil {
			return err
		}
		c := 0
		if v, err := s.Get(ctx, "shared/counter"); err == nil {
			if c, err = parseCounter(v); err != nil {
				unlock()
				return err
			}
		} else if !errors.Is(err, ErrNotFound) {
			unlock()
			return err
		}
		err = s.Set(ctx, "shared/counter", counterValue(c+1))
		unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// counterValue pads the number so a torn write would be visible.
func counterValue(c int) []byte {
	return []byte(fmt.Sprintf("%d|%s|%d", c, strings.Repeat("x", 3000+c%1000), c))
}

func parseCounter(v []byte) (int, error) {
	f := strings.Split(string(v), "|")
	if len(f) != 3 || f[0] != f[2] {
		return 0, fmt.Errorf("bad counter value of %d bytes", len(v))
	}
	return strconv.Atoi(f[0])
}

// writerValue returns one of two large, distinguishable values.
func writerValue(i int) []byte {
	return bytes.Repeat([]byte{byte('A' + i%2)}, maxValue)
}

// helperWriter replaces one key forever, reporting each completed Set on stdout, until
// the parent kills it.
func helperWriter(ctx context.Context, dir string) error {
	s, err := Open(ctx, Options{Backend: "file", Dir: dir})
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		if err := s.Set(ctx, "victim", writerValue(i)); err != nil {
			return err
		}
		fmt.Println("wrote")
	}
}

// helperLocker checks mutual exclusion: inside the lock it creates a marker file with
// O_EXCL, which fails if another holder is inside too.
func helperLocker(ctx context.Context, dir string, n int) error {
	marker := filepath.Join(dir, "inside")
	for i := 0; i < n; i++ {
		unlock, err := Lock(ctx, dir, "mutex")
		if err != nil {
			return err
		}
		f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			unlock()
			return fmt.Errorf("two lock holders at once: %v", err)
		}
		_ = f.Close()
		for j := 0; j < 1000; j++ { // stay inside a little, without sleeping
			_, _ = os.Stat(marker)
		}
		err = os.Remove(marker)
		unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// helperSpawn starts the test binary in a helper mode.
func helperCmd(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + mode}, env...)...)
	return cmd
}

// helperTempHolder is a writer caught between creating its temp file and the rename: it
// prints the temp file's path and waits until stdin closes (or it is killed).
func helperTempHolder(dir string) error {
	f, err := newFileStore(dir)
	if err != nil {
		return err
	}
	tmp, err := f.createTemp("session")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString("a rotated refresh token"); err != nil {
		return err
	}
	fmt.Println(tmp.Name())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// helperSudo is the program under sudo: re-exec as the invoking user, then (as that
// user) report who it is and write a file store under its home.
func helperSudo(ctx context.Context) int {
	ran, code, err := SudoReexec(os.Getenv, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sudo re-exec:", err)
		return 3
	}
	if ran {
		return code
	}
	fmt.Printf("uid=%d\n", os.Getuid())
	fmt.Printf("home=%s\n", os.Getenv("HOME"))
	fmt.Printf("xdg_data_home=%s\n", os.Getenv("XDG_DATA_HOME"))
	fmt.Printf("xdg_runtime_dir=%s\n", os.Getenv("XDG_RUNTIME_DIR"))
	fmt.Printf("dbus=%s\n", os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
	fmt.Printf("cgr=%s\n", os.Getenv("CGR_KEEP_ME"))
	fmt.Printf("role=%s\n", SudoRole(os.Getenv))
	var names []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	fmt.Printf("env=%s\n", strings.Join(names, ","))
	dir := filepath.Join(os.Getenv("HOME"), ".local", "share", "docker-credential-cgr")
	s, err := Open(ctx, Options{Backend: "file", Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	unlock, err := Lock(ctx, dir, "refresh-issuer.example")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer unlock()
	if err := s.Set(ctx, "session/issuer.example", []byte(`{"refresh_token":"x"}`)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("dir=%s\n", dir)
	return 7 // a distinctive code, to check that the parent passes it on
}
