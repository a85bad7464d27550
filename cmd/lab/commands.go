package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"outrigger/internal/fleet"
	"outrigger/internal/lab"
	"outrigger/internal/labfleet"
)

// helpText is the menu.
func helpText(s *session) string {
	var names []string
	for _, h := range s.lab.Hosts() {
		names = append(names, h.Name())
	}
	return `commands (HOST is one of ` + strings.Join(names, ", ") + `):
  crash HOST      power cut: its link goes down, every process on it is killed
  freeze HOST     SIGSTOP every process on it (the kernel still answers TCP handshakes)
  blackhole HOST  drop every packet in and out, link up (peers hear silence)
  heal HOST       undo freeze and blackhole
  boot HOST       after a crash: boot it and start its services again (lb + keepalived,
                  the app, or the database node's keeper, which rejoins as secondary)
  switchover      pg_autoctl perform switchover (a planned change of database primary)
  rollout         roll out the other app version, one app at a time (drained on both lbs,
                  restarted, healthy, enabled again)
  status          print the status line now
  help            this menu
  quit            stop and remove everything (so do Ctrl-C and the end of stdin)`
}

// do runs one command and returns what to print besides "ok".
func (s *session) do(ctx context.Context, cmd string, args []string) (string, error) {
	host := func() (*lab.Host, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("%s takes one host", cmd)
		}
		h := s.lab.Host(args[0])
		if h == nil {
			return nil, fmt.Errorf("no host %q", args[0])
		}
		return h, nil
	}
	switch cmd {
	case "help":
		return helpText(s), nil
	case "status":
		return s.status(ctx), nil
	case "switchover":
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := s.db.Switchover(ctx); err != nil {
			return "", err
		}
		st, err := s.db.Formation().State(ctx)
		return "db " + st.String(), err
	case "rollout":
		return s.rollout(ctx)
	case "crash", "freeze", "blackhole", "heal", "boot":
		h, err := host()
		if err != nil {
			return "", err
		}
		return "", s.fault(ctx, cmd, h)
	}
	return "", fmt.Errorf("unknown command %q (help lists them)", cmd)
}

func (s *session) fault(ctx context.Context, cmd string, h *lab.Host) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	mark := func(state string) { // "" clears
		s.mu.Lock()
		defer s.mu.Unlock()
		if state == "" {
			delete(s.faults, h.Name())
		} else {
			s.faults[h.Name()] = state
		}
	}
	switch cmd {
	case "crash":
		mark("")
		return h.Crash(ctx)
	case "freeze":
		if err := h.Freeze(ctx); err != nil {
			return err
		}
		mark("frozen")
	case "blackhole":
		if err := h.Blackhole(ctx); err != nil {
			return err
		}
		mark("blackholed")
	case "heal":
		mark("")
		return errors.Join(h.Thaw(ctx), h.Unblackhole(ctx))
	case "boot":
		if !h.Crashed() {
			return fmt.Errorf("%s has not crashed", h.Name())
		}
		return s.boot(ctx, h)
	}
	return nil
}

// boot boots a crashed host and starts what runs on it.
func (s *session) boot(ctx context.Context, h *lab.Host) error {
	name := h.Name()
	if s.db.Formation().Node(name) != nil {
		return s.db.Boot(ctx, name) // the node's keeper: it rejoins by itself
	}
	if err := h.Boot(ctx); err != nil {
		return err
	}
	for _, lb := range s.fleet.LBs {
		if lb.Host == h {
			if err := s.fleet.StartLB(ctx, lb); err != nil {
				return err
			}
			return s.fleet.StartKeepalived(ctx, lb)
		}
	}
	for _, a := range s.fleet.Apps {
		if a.Host == h {
			if err := a.Start(ctx); err != nil {
				return err
			}
			return a.WaitHealthy(ctx, s.fleet.Client)
		}
	}
	return nil // the client host runs nothing
}

// rollout replaces every app, one at a time, with the other binary: drained on every lb
// that answers, restarted, healthy, enabled again.
func (s *session) rollout(ctx context.Context) (string, error) {
	bin := s.bins[s.next]
	var notes []string
	for _, a := range s.fleet.Apps {
		if a.Host.Crashed() {
			notes = append(notes, a.Name+" skipped (crashed)")
			continue
		}
		live := s.liveLBs()
		for _, lb := range live {
			if _, err := lb.Admin.Drain(ctx, a.Name); err != nil {
				return "", fmt.Errorf("drain %s on %s: %w", a.Name, lb.Name, err)
			}
		}
		if n := s.waitDrained(ctx, live, a.Name); n > 0 {
			notes = append(notes, fmt.Sprintf("%s restarted with %d requests in flight", a.Name, n))
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := a.Restart(rctx, bin)
		if err == nil {
			err = a.WaitHealthy(rctx, s.fleet.Client)
		}
		cancel()
		if err != nil {
			return "", fmt.Errorf("restart %s: %w", a.Name, err)
		}
		for _, lb := range live {
			if _, err := lb.Admin.Enable(ctx, a.Name); err != nil {
				return "", fmt.Errorf("enable %s on %s: %w", a.Name, lb.Name, err)
			}
		}
		notes = append(notes, a.Name+" now runs "+bin)
	}
	s.next = 1 - s.next
	return strings.Join(notes, "; "), nil
}

// drainWait bounds the wait for a drained app's in-flight requests, as lb rollout's
// -drain-timeout does.
const drainWait = 30 * time.Second

// waitDrained waits, up to drainWait, until no lb of live has a request in flight on the
// app named name, and returns how many were still in flight when the wait ended.
func (s *session) waitDrained(ctx context.Context, live []*labfleet.LB, name string) int64 {
	ctx, cancel := context.WithTimeout(ctx, drainWait)
	defer cancel()
	var left int64
	for _, lb := range live {
		var last int64
		_ = lb.Admin.WaitFor(ctx, func(bs []fleet.Backend) bool {
			last = 0
			for _, b := range bs {
				if b.Name == name {
					last = b.InFlight
				}
			}
			return last == 0
		})
		left += last
	}
	return left
}

// liveLBs are the lbs whose host is neither crashed, frozen nor blackholed, and whose lb
// runs: those whose admin API answers.
func (s *session) liveLBs() []*labfleet.LB {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*labfleet.LB
	for _, lb := range s.fleet.LBs {
		if lb.Host.Crashed() || s.faults[lb.Name] != "" {
			continue
		}
		select {
		case <-lb.Proc.Exited():
		default:
			out = append(out, lb)
		}
	}
	return out
}
