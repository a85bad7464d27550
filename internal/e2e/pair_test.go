package e2e

import (
	"syscall"
	"testing"
	"time"

	"outrigger/internal/fleet"
	"outrigger/internal/labfleet"
)

// TestLabPair is DESIGN's second-iteration bars 5-7 in the lab: a client host loading the
// virtual IP over HTTPS, two lbs behind it (deploy/keepalived), three app hosts and
// PostgreSQL on its own host, one fleet shared by the subtests, which run in order and
// each leave both lbs ready.
func TestLabPair(t *testing.T) {
	f := labfleet.ForTest(t, labfleet.Options{LB: bin.lb, App: bin.appV1})
	users := labUsers(t, f, "pair", 8, 16<<10)
	// users[0] (HTTP/2) and users[1] (HTTP/1.1) upload beside the load in the planned
	// stops: a POST is not retried by clients, so one cut connection shows.
	load := func(d time.Duration) *fleet.LoadRun {
		lr := fleet.StartLoad(t.Context(), userLoad(users[2:], d))
		if !lr.WaitRequests(t.Context(), 50) {
			t.Fatalf("load before the fault: %v", lr.Stop())
		}
		return lr
	}
	holder := func() *labfleet.LB {
		h, err := f.WaitHolder(t.Context(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	// SIGTERM to the holder: /readyz answers 503 at once, keepalived moves the address
	// within its check's fall, lb serves on for shutdown_delay, then drains. Zero failed.
	t.Run("sigterm", func(t *testing.T) {
		h := holder()
		next := f.Other(h)
		lr := load(60 * time.Second)
		up := startPlannedUploads(t, users[:2])
		start := time.Now()
		if err := h.Proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		moved := waitMove(t, f, next, 10*time.Second)
		if err := h.Proc.Wait(t.Context()); err != nil {
			t.Errorf("lb on %s after SIGTERM: %v", h.Name, err)
		}
		lr.WaitRequests(t.Context(), 200)
		res := lr.Stop()
		report(t, "SIGTERM to "+h.Name, res)
		t.Logf("SIGTERM: the address moved after %v; lb exited after %v", moved.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if res.Failures != 0 || res.Broken != 0 {
			t.Errorf("SIGTERM to the holder: %d failed requests and %d broken, want 0", res.Failures, res.Broken)
		}
		up.check(t, "SIGTERM")
		if err := f.StartLB(t.Context(), h); err != nil {
			t.Fatal(err)
		}
		recovered(t, f, h)
		stays(t, f, next, time.Second)
	})

	// Upgrade both lbs one after the other, the one not holding the address first.
	t.Run("upgrade", func(t *testing.T) {
		first := f.Other(holder())
		lr := load(120 * time.Second)
		up := startPlannedUploads(t, users[:2])
		for _, lb := range []*labfleet.LB{first, f.Other(first)} {
			if err := f.Restart(t.Context(), lb, bin.lbV2); err != nil {
				t.Fatal(err)
			}
			recovered(t, f, lb)
		}
		lr.WaitRequests(t.Context(), 100)
		res := lr.Stop()
		report(t, "upgrade of both lbs", res)
		if res.Failures != 0 || res.Broken != 0 {
			t.Errorf("upgrade: %d failed requests and %d broken, want 0", res.Failures, res.Broken)
		}
		up.check(t, "upgrade")
		for _, lb := range f.LBs {
			if v, err := lb.Version(t.Context()); err != nil || v != "v2" {
				t.Errorf("%s reports version %q (%v), want v2", lb.Name, v, err)
			}
		}
	})

	// kill -9 of the holder, then a crash of its host: the other holds the address
	// within 3 s; failures only on connections to the dead lb, refusals counted apart;
	// the dead lb, restarted, does not take the address back.
	for _, fault := range []string{"kill", "crash"} {
		t.Run(fault, func(t *testing.T) {
			h := holder()
			next := f.Other(h)
			lr := load(60 * time.Second)
			stop := make(chan struct{})
			window := refusalWindow(f, stop)
			time.Sleep(50 * time.Millisecond)
			var err error
			if fault == "kill" {
				err = h.Proc.Kill()
			} else {
				err = h.Host.Crash(t.Context())
			}
			if err != nil {
				t.Fatal(err)
			}
			moved := waitMove(t, f, next, 10*time.Second)
			lr.WaitRequests(t.Context(), 200)
			close(stop)
			// A request the dead lb held ends when the client's retransmission meets the
			// new holder's reset (backing off: 0.2, 0.6, 1.4, 3 s): wait for it rather
			// than cut it uncounted.
			time.Sleep(4 * time.Second)
			res := lr.Stop()
			refusedFor := <-window
			refused, other := failures(res)
			report(t, fault+" of "+h.Name, res)
			t.Logf("%s: the address moved after %v; refused for %v; %d requests refused, %d other failures (in flight on the dead lb)",
				fault, moved.Round(time.Millisecond), refusedFor.Round(time.Millisecond), refused, other)
			if moved > 3*time.Second {
				t.Errorf("%s: the address took %v to move, want at most 3s", fault, moved)
			}
			if other > len(users) {
				t.Errorf("%s: %d failures besides refusals, more than the %d requests that can be in flight", fault, other, len(users))
			}
			if fault == "crash" {
				if err := h.Host.Boot(t.Context()); err != nil {
					t.Fatal(err)
				}
				if err := f.StartLB(t.Context(), h); err != nil {
					t.Fatal(err)
				}
				if err := f.StartKeepalived(t.Context(), h); err != nil {
					t.Fatal(err)
				}
			} else if err := f.StartLB(t.Context(), h); err != nil {
				t.Fatal(err)
			}
			recovered(t, f, h)
			stays(t, f, next, time.Second)
		})
	}

	t.Run("blackhole", func(t *testing.T) { blackholeApp(t, f, users) })
	t.Run("partition", func(t *testing.T) { partitionLB(t, f, users[2:]) })
}

// plannedUploads is a loop of small uploads per user beside a planned stop.
type plannedUploads []*uploads

func startPlannedUploads(t *testing.T, users []*user) plannedUploads {
	var ups plannedUploads
	for _, u := range users {
		ups = append(ups, startUploads(t.Context(), u, 1, 8<<10))
	}
	return ups
}

// check stops the uploads and fails the test if any failed.
func (ups plannedUploads) check(t *testing.T, phase string) {
	t.Helper()
	for i, up := range ups {
		n, failed := up.stop()
		t.Logf("%s: user %d uploaded %d files, %d failed", phase, i, n, failed)
		if failed != 0 {
			t.Errorf("%s: %d of %d uploads failed, want 0 (%s)", phase, failed, n, up.firstErr)
		}
	}
}
