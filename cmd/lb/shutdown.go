package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"outrigger/internal/balancer"
)

// shutdown stops accepting, lets requests in flight finish for up to
// drain_timeout, closes WebSockets then, and stops the admin listener last.
func (s *lbServer) shutdown() error {
	timeout := s.cfg.Load().DrainTimeout
	s.logger.Info("shutting down: draining requests in flight", "drain_timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(s.public))
	for i, f := range s.public {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.shutdown(ctx)
		}()
	}
	wg.Wait()
	// Hijacked connections (WebSockets) are not tracked by net/http: wait for
	// them until drain_timeout, then close them.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for upgraded(s.pool) > 0 {
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
		}
		break
	}
	cut := upgraded(s.pool)
	for _, st := range s.pool.Snapshot() {
		s.pool.CloseUpgraded(st.Name)
	}
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	errs = append(errs, s.admin.shutdown(actx))
	err := errors.Join(errs...)
	if errors.Is(err, context.DeadlineExceeded) || cut > 0 {
		s.logger.Warn("drain_timeout reached: cut what was left", "upgraded_closed", cut)
	}
	s.logger.Info("stopped")
	if errors.Is(err, context.DeadlineExceeded) {
		return nil // requests were cut at drain_timeout, as configured: still a clean exit
	}
	return err
}

func upgraded(p *balancer.Pool) int64 {
	var n int64
	for _, st := range p.Snapshot() {
		n += st.Upgraded
	}
	return n
}
