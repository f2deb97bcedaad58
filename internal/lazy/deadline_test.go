package lazy

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineUnusedStartsNoTimer(t *testing.T) {
	d := time.Now().Add(time.Hour)
	ctx, cancel := WithDeadline(context.Background(), d)
	c := ctx.(*deadlineCtx)
	if got, ok := ctx.Deadline(); !ok || !got.Equal(d) {
		t.Fatalf("Deadline %v %v, want %v", got, ok, d)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err before the deadline: %v", err)
	}
	if ctx.Value("k") != nil || c.made.Load() {
		t.Fatal("Deadline, Err or Value started the timer")
	}
	cancel()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err after cancel: %v", ctx.Err())
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Done not closed after cancel")
	}
}

func TestDeadlinePassesUnwatched(t *testing.T) {
	ctx, cancel := WithDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
	defer cancel()
	time.Sleep(40 * time.Millisecond)
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline: %v", ctx.Err())
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Err says the deadline passed but Done is open")
	}
}

func TestDeadlineWatchedFiresAndReachesChildren(t *testing.T) {
	ctx, cancel := WithDeadline(context.Background(), time.Now().Add(50*time.Millisecond))
	defer cancel()
	child, stop := context.WithTimeout(ctx, time.Hour)
	defer stop()
	if d, _ := child.Deadline(); time.Until(d) > time.Second {
		t.Fatalf("the child's deadline %v is not bounded by the parent's", d)
	}
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the child was not cancelled at the parent's deadline")
	}
	if !errors.Is(child.Err(), context.DeadlineExceeded) || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("errors %v / %v, want DeadlineExceeded", child.Err(), ctx.Err())
	}
}

func TestDeadlineFollowsItsParent(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), "k", "v"))
	ctx, cancel := WithDeadline(parent, time.Now().Add(time.Hour))
	defer cancel()
	if ctx.Value("k") != "v" {
		t.Fatal("the parent's value is not seen")
	}
	cancelParent()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err after the parent's cancel: %v", ctx.Err())
	}
	early, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	c2, cancel2 := WithDeadline(early, time.Now().Add(time.Hour))
	defer cancel2()
	if d, _ := c2.Deadline(); time.Until(d) > 2*time.Minute {
		t.Fatalf("Deadline %v ignores the parent's earlier one", d)
	}
}
