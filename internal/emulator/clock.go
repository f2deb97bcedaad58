package emulator

import (
	"sync"
	"time"
)

// Clock is the emulator's notion of "now". It ticks with the wall clock from
// an offset that tests move with Advance or Set; every expiry check and every
// Date header uses it.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// NewClock returns a clock that reads t now and ticks from there.
func NewClock(t time.Time) *Clock {
	return &Clock{offset: time.Until(t)}
}

// Now returns the emulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d (backward when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Set makes the clock read t now.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
}
