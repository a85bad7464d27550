package app

import (
	"context"
	"errors"
	"time"
)

// errNoSlot: every transfer slot stayed busy for the whole wait.
var errNoSlot = errors.New("too many transfers at once")

// slots bounds how many uploads and downloads run at once, so that file
// transfers hold at most half of the database pool.
type slots struct {
	c    chan struct{}
	wait time.Duration
}

func newSlots(n int, wait time.Duration) *slots {
	return &slots{c: make(chan struct{}, n), wait: wait}
}

// acquire takes a slot, waiting at most s.wait (and no longer than ctx).
func (s *slots) acquire(ctx context.Context) error {
	select {
	case s.c <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.c <- struct{}{}:
		return nil
	case <-t.C:
		return errNoSlot
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives a slot back.
func (s *slots) release() { <-s.c }
