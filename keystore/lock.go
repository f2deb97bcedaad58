package keystore

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// lockPoll is how often a waiting Lock retries.
const lockPoll = 15 * time.Millisecond

// Lock takes the cross-process exclusive lock <dir>/<name>.lock (name escaped as store
// keys are), waiting until ctx is
// done. The lock is an OS file lock, so a crashed holder releases it. Every
// read-modify-write of the store and every token refresh runs under one. The returned
// unlock is safe to call more than once.
func Lock(ctx context.Context, dir, name string) (unlock func(), err error) {
	if name == "" {
		return nil, fmt.Errorf("empty lock name")
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	fl := flock.New(filepath.Join(dir, escapeName(name)+".lock"), flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, lockPoll)
	if err != nil || !ok {
		_ = fl.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("waiting for lock %q: %w", name, err)
	}
	return func() { _ = fl.Unlock() }, nil
}
