package lazy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// WithDeadline is context.WithDeadline with its timer started only when something waits:
// at the first Done, or at an Err once the deadline has passed. A warm `get` waits for
// nothing (it reads a file and answers), yet the timer that context.WithDeadline starts at
// once made the runtime create its network poller on every get: epoll_create1, an eventfd,
// and another thread woken to wait on it. Deadline reports the deadline from the start, so
// timeouts derived from it are bounded as before, and a context derived from this one
// (context.WithTimeout, WithCancel) asks for Done and so starts the timer.
func WithDeadline(parent context.Context, d time.Time) (context.Context, context.CancelFunc) {
	c := &deadlineCtx{parent: parent, deadline: d}
	return c, c.cancel
}

type deadlineCtx struct {
	parent   context.Context
	deadline time.Time
	mu       sync.Mutex
	made     atomic.Bool     // ctx and stop are set, never to change again
	ctx      context.Context // context.WithDeadline's, or an already-cancelled one
	stop     context.CancelFunc
}

// real is the context.WithDeadline this one stands for, made on first need.
func (c *deadlineCtx) real() context.Context {
	if !c.made.Load() {
		c.mu.Lock()
		if !c.made.Load() {
			c.ctx, c.stop = context.WithDeadline(c.parent, c.deadline)
			c.made.Store(true)
		}
		c.mu.Unlock()
	}
	return c.ctx
}

func (c *deadlineCtx) cancel() {
	c.mu.Lock()
	if !c.made.Load() {
		// Cancelled before anyone waited: no timer is needed to say so.
		c.ctx, c.stop = context.WithCancel(c.parent)
		c.made.Store(true)
	}
	c.mu.Unlock()
	c.stop()
}

func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.real().Done() }

func (c *deadlineCtx) Err() error {
	if !c.made.Load() && time.Now().Before(c.deadline) && c.parent.Err() == nil {
		return nil // and Done, once asked for, will not be closed yet
	}
	return c.real().Err()
}

func (c *deadlineCtx) Value(key any) any {
	if c.made.Load() {
		return c.ctx.Value(key) // the context package finds its own cancelCtx this way
	}
	return c.parent.Value(key)
}

func (c *deadlineCtx) String() string { return "lazy.WithDeadline(" + c.deadline.String() + ")" }
