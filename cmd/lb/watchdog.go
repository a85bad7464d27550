package main

import (
	"context"
	"errors"
	"fmt"

	"outrigger/internal/frontend"
	"outrigger/internal/watchdog"
)

// listenerProgress is lb's watchdog check: every listener's accept loop runs, and over the
// last interval each one either waited in Accept for a new connection (idle, not stuck) or
// moved on (a connection accepted, a request served). Two states withhold the ping:
//   - the accept loop is out of Accept and took no connection in a whole interval: it is
//     stuck handing a connection on;
//   - every limits.max_conns slot is held and not one request finished in a whole interval:
//     the connection handling is wedged, and no new client gets in either.
//
// A listener whose accept loop stopped while lb still runs withholds it too.
type listenerProgress struct {
	listeners func() []*frontend.Listener
	prev      map[*frontend.Listener]frontend.Liveness
}

func newListenerProgress(listeners func() []*frontend.Listener) *listenerProgress {
	return &listenerProgress{listeners: listeners, prev: map[*frontend.Listener]frontend.Liveness{}}
}

// check is a watchdog.Check.
func (p *listenerProgress) check(context.Context) error {
	ls := p.listeners()
	cur := make([]frontend.Liveness, len(ls))
	served := false // a request finished on any listener (they share the max_conns slots)
	for i, l := range ls {
		cur[i] = l.Liveness()
		if prev, seen := p.prev[l]; !seen || cur[i].Served != prev.Served {
			served = true
		}
	}
	var errs []error
	for i, l := range ls {
		prev, seen := p.prev[l]
		p.prev[l] = cur[i]
		if err := stalled(cur[i], prev, seen, served); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", l.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// stalled says why a listener made no progress between prev and cur, one watchdog
// interval apart (seen is false at the first look, which only records a baseline; served
// says whether a request finished on any listener meanwhile).
func stalled(cur, prev frontend.Liveness, seen, served bool) error {
	if !cur.Accepting {
		return errors.New("its accept loop stopped")
	}
	if !seen || cur.Accepted != prev.Accepted || cur.Served != prev.Served {
		return nil
	}
	switch {
	case !cur.WaitingInAccept:
		return errors.New("its accept loop took no connection in a whole interval and is not waiting in Accept")
	case cur.Full && prev.Full && !served:
		return errors.New("every max_conns slot is held and no request finished in a whole interval")
	}
	return nil
}

// startWatchdog pings systemd while lb's listeners make progress (watchdog.Run), when the
// unit has WatchdogSec=; it returns a function that stops the pings (at SIGTERM: the stop
// is bounded by TimeoutStopSec, not by the watchdog).
func (s *lbServer) startWatchdog(ctx context.Context) (stop func()) {
	cfg, ok, err := watchdog.FromEnv(s.getenv, s.pid)
	if err != nil {
		s.logger.Warn("systemd watchdog off", "err", err.Error())
	}
	if !ok {
		return func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	progress := newListenerProgress(func() []*frontend.Listener {
		return append([]*frontend.Listener{s.admin}, s.public...)
	})
	go func() {
		defer close(done)
		watchdog.Run(wctx, cfg, progress.check, s.logger)
	}()
	return func() { cancel(); <-done }
}
