package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"outrigger/internal/fleet"
)

// TestPostgresRestart: PostgreSQL restarts under load; the fleet recovers by itself
// within seconds, and nobody is logged out (a database error is never a 401 and never
// rewrites the session cookie).
func TestPostgresRestart(t *testing.T) {
	f := startFleet(t, fleet.Options{Apps: 3}, true)
	ctx := t.Context()
	users := makeUsers(t, f, "pg", 4, 64<<10)
	lbURL, err := url.Parse(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	cookies := func(u *user) string {
		var s []string
		for _, c := range u.c.Jar.Cookies(lbURL) {
			s = append(s, c.Name+"="+c.Value)
		}
		return strings.Join(s, "; ")
	}
	before := make([]string, len(users))
	for i, u := range users {
		if before[i] = cookies(u); before[i] == "" {
			t.Fatalf("%s has no session cookie after login", u.name)
		}
	}

	lr := fleet.StartLoad(ctx, userLoad(users, 2*time.Minute))
	if !lr.WaitRequests(ctx, 50) {
		t.Fatalf("load before the restart: %v", lr.Stop())
	}
	c := f.Cluster()
	stopped := time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	// Keep it down until lb has seen every app's /healthz degraded (503) and marked
	// them all down: lb then fails open, and everything must come back by itself.
	waitFor(t, 15*time.Second, "lb to mark every app down while PostgreSQL is down", func() bool {
		bs, err := f.Admin().Backends(ctx)
		if err != nil {
			return false
		}
		for _, b := range bs {
			if b.Healthy {
				return false
			}
		}
		return true
	})
	lr.WaitRequests(ctx, 20) // requests while every backend is down
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	started := time.Now()
	t.Logf("PostgreSQL was down for %v", started.Sub(stopped).Round(time.Millisecond))

	// Recovered: every user's /api/me and download succeed, three rounds in a row.
	ok := 0
	var lastErr error
	for ok < 3 {
		if time.Since(started) > 15*time.Second {
			t.Fatalf("fleet not recovered 15s after PostgreSQL came back; last error: %v", lastErr)
		}
		lastErr = nil
		for _, u := range users {
			if _, _, err := u.me(ctx); err != nil {
				lastErr = err
			} else if _, err := download(ctx, u.c, u.base, u.files[0], nil); err != nil {
				lastErr = err
			}
		}
		if lastErr == nil {
			ok++
		} else {
			ok = 0
		}
	}
	recovered := time.Since(started)
	lr.WaitRequests(ctx, 100)
	res := lr.Stop()
	t.Logf("recovered %v after PostgreSQL was back", recovered.Round(time.Millisecond))
	report(t, "PostgreSQL restart (failures during the outage are expected)", res)
	for reason, n := range res.Reasons {
		if strings.Contains(reason, "status 401") {
			t.Errorf("during the restart: %dx %s, want no 401 (a database error is 503)", n, reason)
		}
	}
	for i, u := range users {
		if got := cookies(u); got != before[i] {
			t.Errorf("%s's session cookie changed over the restart: got %q, want %q", u.name, got, before[i])
		}
	}

	// After recovery: a clean load, nobody logged out.
	after := fleet.Load(ctx, func() fleet.LoadOptions {
		o := userLoad(users, 30*time.Second)
		o.MaxRequests = 200
		return o
	}())
	report(t, "after the restart", after)
	if after.Failures != 0 || after.Requests != 200 {
		t.Errorf("after the restart: got %d of %d requests failed, want 0 of 200", after.Failures, after.Requests)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := f.WaitHealthy(wctx, f.AppNames()...); err != nil {
		t.Errorf("every backend healthy after the restart: %v", err)
	}
}
