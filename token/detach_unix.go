//go:build unix

package token

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// RefreshAction is the hidden argument that runs one job in a process of its own.
const RefreshAction = "__refresh"

// Exec runs each job as `<Exe> __refresh <kind> <arg> <locks>`, a child in a new session (setsid), so
// neither Ctrl-C at the terminal nor a kill of the caller or its process group reaches it. The
// child inherits the held locks (fd 4 on) and reports on fd 3; its stdout and stderr are
// /dev/null, so a client reading the caller's output (docker's exec of `get`) never waits for
// the child. Env is the child's whole environment.
type Exec struct {
	Exe string
	Env []string
}

// Run implements Runner.
func (r Exec) Run(ctx context.Context, d Deps, job Job, held []*keystore.Held) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return InProcess{}.Run(ctx, d, job, held)
	}
	arg := job.Audience
	if job.Kind == jobPull || job.Kind == jobPullCheck {
		arg = job.Host
	}
	cmd := exec.Command(r.Exe, RefreshAction, job.Kind, arg, strconv.Itoa(len(held)))
	cmd.Env = r.Env
	cmd.ExtraFiles = []*os.File{pw}
	for _, h := range held {
		cmd.ExtraFiles = append(cmd.ExtraFiles, h.File())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		// Cannot start a child (no such binary, no processes left): do it here.
		return InProcess{}.Run(ctx, d, job, held)
	}
	pw.Close()
	for _, h := range held {
		h.Handed()
	}
	done := make(chan JobResult, 1)
	go func() {
		res := readJobResult(pr)
		pr.Close()
		_ = cmd.Wait()
		done <- res
	}()
	select {
	case res := <-done:
		for _, w := range res.Warnings {
			fmt.Fprintln(depStderr(d), w)
		}
		return res.Err()
	case <-ctx.Done():
		return errPending
	}
}

// detachedAttr starts a child in a session of its own.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
