package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// openPTY opens a pseudo-terminal pair; what the child writes to the replica is read from
// the primary. (Hand-written: six lines of ioctls, not worth a dependency.)
func openPTY(t *testing.T) (primary, replica *os.File) {
	t.Helper()
	p, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(p.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(p.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	r, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty replica: %v", err)
	}
	return p, r
}

// getAtTerminal runs get with stderr on a terminal (stdin and stdout stay pipes, as when
// docker runs the helper from an interactive shell) and returns what the terminal showed.
func (w *world) getAtTerminal(serverURL string, extra ...string) (result, string) {
	w.t.Helper()
	primary, replica := openPTY(w.t)
	defer primary.Close()
	var screen bytes.Buffer
	drained := make(chan struct{})
	go func() { // the terminal must be read, or a chatty child blocks on a full pty
		_, _ = io.Copy(&screen, primary) // ends with EIO once the replica is closed
		close(drained)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin, "get")
	cmd.Env = append(w.environ(), extra...)
	cmd.Stdin = strings.NewReader(serverURL)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, replica
	err := cmd.Run()
	replica.Close()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	return result{stdout: out.String(), code: code}, screen.String()
}

// A session that needs a new login: `get` starts the browser login by itself only when a
// person is at the terminal (stderr is a tty), not in CI, and CGR_AUTO_LOGIN is not false;
// everywhere else it answers one line naming `docker-credential-cgr login`.
func TestAutoLoginOnlyAtATerminal(t *testing.T) {
	w := newWorld(t, emulator.Options{TokenTTL: 4 * time.Second})
	w.login()
	host := w.emu.RegistryHost()
	w.emu.RevokeRefreshTokens()
	time.Sleep(4 * time.Second) // and the cached token has expired: only a new login helps

	for _, c := range []struct {
		name     string
		terminal bool
		env      []string
	}{
		{"stderr a pipe", false, []string{"CGR_AUTO_LOGIN=true"}},
		{"terminal, in CI", true, []string{"CGR_AUTO_LOGIN=true", "CI=true"}},
		{"terminal, on GitHub Actions", true, []string{"CGR_AUTO_LOGIN=true", "GITHUB_ACTIONS=true"}},
		{"terminal, CGR_AUTO_LOGIN=false", true, []string{"CGR_AUTO_LOGIN=false"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w.emu.ResetCounts()
			var r result
			if c.terminal {
				r, _ = w.getAtTerminal(host, c.env...)
			} else {
				r = runCommand(t, append(w.environ(), c.env...), "", host, helperBin, "get")
			}
			oneLine(t, c.name, r, "docker-credential-cgr login")
			if n := w.emu.Count("oauth"); n != 0 {
				t.Fatalf("a browser login was started (%d /oauth visits)", n)
			}
		})
	}

	t.Run("a person at the terminal", func(t *testing.T) {
		w.emu.ResetCounts()
		r, screen := w.getAtTerminal(host, "CGR_AUTO_LOGIN=true")
		w.served("get after the automatic login", r)
		if n := w.emu.Count("oauth"); n != 1 {
			t.Fatalf("%d /oauth visits; want the one browser login", n)
		}
		if !strings.Contains(screen, "Opening browser to") {
			t.Fatalf("the terminal was not told a browser login started:\n%s", screen)
		}
		noJWTIn(t, "the terminal", screen)
		// The new session is stored: the next get, from a pipe, needs no login.
		r = runCommand(t, w.environ(), "", host, helperBin, "get")
		w.served("get after the automatic login, from a pipe", r)
	})
}
