//go:build !unix

package token

import (
	"context"
	"syscall"

	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// RefreshAction is the hidden argument that runs one job in a process of its own.
const RefreshAction = "__refresh"

// Exec runs jobs in this process here: the lock cannot be handed to a child on this system.
type Exec struct {
	Exe string
	Env []string
}

// Run implements Runner.
func (r Exec) Run(ctx context.Context, d Deps, job Job, held []*keystore.Held) error {
	return InProcess{}.Run(ctx, d, job, held)
}

// detachedAttr: nothing to detach from here.
func detachedAttr() *syscall.SysProcAttr { return nil }
