package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"outrigger/internal/balancer"
)

// keepServing is the first phase of a stop. /readyz already answers 503 "stopping", so
// keepalived lowers this lb's priority and the other lb of the pair takes the address; lb
// meanwhile accepts and serves exactly as before for shutdown_delay, so that no client meets
// a closed port while this lb still holds the address.
//
// Each answer meanwhile closes its connection (closeAfterAnswer: "Connection: close" on
// HTTP/1, a GOAWAY on HTTP/2), so clients move to new connections, which reach the other
// lb once the address has moved; connections that stay open to this lb keep working after
// the move, since the other lb hands their packets back (deploy/keepalived/lb-notify.sh).
// Idle connections are not closed before the drain: a request may already be on its way.
//
// A further SIGTERM or SIGINT (more) ends the delay early.
func (s *lbServer) keepServing(more <-chan struct{}) {
	delay := s.cfg.Load().ShutdownDelay
	if delay <= 0 {
		s.logger.Info("stopping: /readyz answers 503; shutdown_delay is 0, draining at once")
		return
	}
	s.logger.Info("stopping: /readyz answers 503; still accepting and serving for shutdown_delay",
		"shutdown_delay", delay.String())
	start := time.Now()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		s.logger.Info("shutdown_delay over")
	case <-more:
		waited := time.Since(start)
		s.logger.Warn("another signal: skipping the rest of shutdown_delay",
			"waited", waited.Seconds(), "skipped", (delay - waited).Seconds())
	}
}

// shutdown stops accepting, lets requests in flight finish for up to drain_timeout (a further
// SIGTERM or SIGINT on more ends the wait at once), closes WebSockets then, and stops the
// admin listener last.
func (s *lbServer) shutdown(more <-chan struct{}) error {
	timeout := s.cfg.Load().DrainTimeout
	s.logger.Info("shutting down: no longer accepting, draining requests in flight", "drain_timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-more:
			s.logger.Warn("another signal: ending the drain now, cutting what is left")
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, len(s.public))
	for i, f := range s.public {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.Shutdown(ctx)
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
	errs = append(errs, s.admin.Shutdown(actx))
	err := errors.Join(errs...)
	if ctx.Err() != nil || cut > 0 {
		why := "drain_timeout reached"
		if errors.Is(ctx.Err(), context.Canceled) {
			why = "drain ended by a further signal"
		}
		s.logger.Warn(why+": cut what was left", "upgraded_closed", cut)
	}
	s.logger.Info("stopped")
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil // requests were cut at drain_timeout or on a further signal, as asked: still a clean exit
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

// furtherSignals watches SIGTERM and SIGINT for `lb serve` and sends one value for each
// after the first: the first is what began the stop (main's signal.NotifyContext turned it
// into ctx's cancellation), each later one moves the stop on (keepServing, shutdown). While
// it watches, those signals never take their default action, even after main stops
// catching them. Call it before anything slow, so that it sees the first signal too.
func furtherSignals() (<-chan struct{}, func()) {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	more := make(chan struct{}, 4)
	done := make(chan struct{})
	go func() {
		first := true
		for {
			select {
			case <-sig:
				if first {
					first = false
					continue
				}
				select {
				case more <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	return more, func() {
		signal.Stop(sig)
		close(done)
	}
}
