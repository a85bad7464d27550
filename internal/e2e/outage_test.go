package e2e

import (
	"context"
	"testing"
	"time"

	"outrigger/internal/fleet"
)

// TestOutage is DESIGN's acceptance bar 1: kill -9 or SIGSTOP one of three app
// servers while authenticated clients read /api/me and download files through lb.
func TestOutage(t *testing.T) {
	f := startFleet(t, fleet.Options{Apps: 3}, false)
	ctx := t.Context()
	admin := f.Admin()
	users := makeUsers(t, f, "outage", 4, 300<<10) // 300 KiB: two chunks, long enough to be cut mid-body

	// retried counts lb's request lines that took more than one attempt so far: the
	// evidence that a phase really sent requests to the broken server.
	retried := func() int {
		lines, err := f.RequestLines()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ls := range lines {
			for _, l := range ls {
				if l.Proc == "lb" && l.Str("attempts") != "" && l.Str("attempts") != "1" {
					n++
				}
			}
		}
		return n
	}
	down := func(name string) func() bool {
		return func() bool {
			b, err := admin.Backend(ctx, name)
			return err == nil && !b.Healthy
		}
	}

	// kill -9 app-2 under load: no request fails (responses already streaming may break).
	lr := fleet.StartLoad(ctx, userLoad(users, 60*time.Second))
	if !lr.WaitRequests(ctx, 100) {
		t.Fatalf("load before the kill: %v", lr.Stop())
	}
	if err := f.Kill(1); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	waitFor(t, 10*time.Second, "lb to mark app-2 down", down("app-2"))
	t.Logf("lb marked app-2 down %v after kill -9", time.Since(killedAt).Round(time.Millisecond))
	lr.WaitRequests(ctx, 300)
	res := lr.Stop()
	report(t, "kill -9 app-2", res)
	retriedKill := retried()
	t.Logf("kill -9 app-2: lb retried %d requests on another backend", retriedKill)
	if res.Failures != 0 {
		t.Errorf("kill -9: got %d failed requests, want 0", res.Failures)
	}
	if limit := perTry + time.Second; res.HeaderMax > limit {
		t.Errorf("kill -9: slowest response took %v to start, want at most per_try_timeout + 1s = %v", res.HeaderMax, limit)
	}

	// The killed server, restarted, comes back into rotation by itself.
	if err := f.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := f.WaitHealthy(wctx, "app-2"); err != nil {
		t.Fatalf("app-2 back in rotation: %v", err)
	}
	t.Logf("app-2 healthy in lb %v after its restart", time.Since(restartedAt).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "app-2 to answer through lb", func() bool {
		inst, _, err := users[0].me(ctx)
		return err == nil && inst == "app-2"
	})

	// SIGSTOP app-3 under load: no request fails, none waits longer than per_try_timeout + 1s.
	lr = fleet.StartLoad(ctx, userLoad(users, 60*time.Second))
	if !lr.WaitRequests(ctx, 100) {
		t.Fatalf("load before SIGSTOP: %v", lr.Stop())
	}
	if err := f.Stop(2); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	waitFor(t, 10*time.Second, "lb to mark the frozen app-3 down", down("app-3"))
	t.Logf("lb marked app-3 down %v after SIGSTOP", time.Since(stoppedAt).Round(time.Millisecond))
	lr.WaitRequests(ctx, 300)
	if err := f.Cont(2); err != nil {
		t.Fatal(err)
	}
	res = lr.Stop()
	report(t, "SIGSTOP app-3", res)
	t.Logf("SIGSTOP app-3: lb retried %d requests on another backend", retried()-retriedKill)
	if res.Failures != 0 {
		t.Errorf("SIGSTOP: got %d failed requests, want 0", res.Failures)
	}
	// A download already streaming from app-3 when it froze stalls until SIGCONT: it
	// cannot be retried once bytes went out, so those (res.Stalled) are counted apart,
	// as DESIGN's bar 1 says; every request waits at most per_try_timeout + 1s for its
	// response to start.
	if limit := perTry + time.Second; res.HeaderMax > limit {
		t.Errorf("SIGSTOP: slowest response took %v to start, want at most per_try_timeout + 1s = %v", res.HeaderMax, limit)
	}
	wctx2, cancel2 := context.WithTimeout(ctx, 20*time.Second)
	defer cancel2()
	if err := f.WaitHealthy(wctx2, f.AppNames()...); err != nil {
		t.Errorf("after SIGCONT every backend healthy again: %v", err)
	}
}
