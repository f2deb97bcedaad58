package e2e

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// The docker CLI drops a helper's error and pulls anonymously, so `docker pull` alone would
// show a bare "unauthorized". When the docker CLI runs the helper from a terminal, the helper
// puts its one line (cause and fix) on that terminal; without a terminal it stays silent.
func TestDockerPullShowsTheLineOnTheTerminal(t *testing.T) {
	docker := need(t, "docker")
	w := newWorld(t, emulator.Options{TokenTTL: 4 * time.Second})
	w.login()
	w.emu.RevokeRefreshTokens()
	time.Sleep(4 * time.Second) // the cached token expired and the session cannot be refreshed
	img := w.emu.PrivateImage()

	primary, replica := openPTY(t)
	defer primary.Close()
	var screen bytes.Buffer
	drained := make(chan struct{})
	go func() { _, _ = io.Copy(&screen, primary); close(drained) }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, "pull", img)
	cmd.Env = w.environ()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = replica, replica, replica
	// A new session whose controlling terminal is the pty, as an interactive shell's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err := cmd.Run()
	replica.Close()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
	}
	if err == nil {
		t.Fatalf("docker pull %s succeeded with a revoked session", img)
	}
	got := screen.String()
	if !strings.Contains(got, "docker-credential-cgr: ") || !strings.Contains(got, "docker-credential-cgr login") {
		t.Fatalf("the terminal did not show the helper's line:\n%s", got)
	}
	noJWTIn(t, "the terminal", got)

	// Without a terminal (CI) there is nowhere to put it: docker's own refusal, nothing from
	// the helper mixed into docker's output, and no hang.
	r := w.run("", docker, "pull", img)
	if r.code == 0 {
		t.Fatalf("docker pull %s without a terminal succeeded with a revoked session", img)
	}
	if strings.Contains(r.stdout+r.stderr, "docker-credential-cgr: ") {
		t.Errorf("without a terminal the helper's line leaked into docker's output:\n%s%s", r.stdout, r.stderr)
	}
	if !strings.Contains(strings.ToLower(r.stderr), "unauthorized") && !strings.Contains(strings.ToLower(r.stderr), "denied") {
		t.Errorf("docker pull without credentials did not fail as a refused pull:\n%s", r.stderr)
	}
}
