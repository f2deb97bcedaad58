package keystore

import (
	"context"
	"time"
)

// lockPoll is how often a waiting Lock retries.
const lockPoll = 15 * time.Millisecond

// Lock takes the cross-process exclusive lock <dir>/<name>.lock (name escaped as store
// keys are), waiting until ctx is done. The lock is an OS file lock, so a crashed holder
// releases it. Every read-modify-write of the store and every token refresh runs under one.
// The returned unlock is safe to call more than once. See Held for a lock that can be handed
// to a child process.
func Lock(ctx context.Context, dir, name string) (unlock func(), err error) {
	h, err := Acquire(ctx, dir, name)
	if err != nil {
		return nil, err
	}
	return h.Release, nil
}
