package app

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

// margin is what a request may take beyond its budget on a loaded 2-core machine.
const margin = 1500 * time.Millisecond

// failoverApp starts an app whose pool is on dsn, configured as cmd/app does, with a
// database budget (DB_RETRY_TIMEOUT) of budget. The schema must be migrated.
func failoverApp(t *testing.T, dsn string, budget time.Duration) *testApp {
	t.Helper()
	pool := pgtest.OpenPool(t, dsn, pgretry.ConfigurePool, nil)
	return newTestApp(t, appOptions{pool: pool, cfg: Config{DBRetryTimeout: budget}})
}

// maxWait is the longest any request may take with budget: the budget, the half second a
// failed upload takes to delete what it wrote, and the margin.
func maxWait(budget time.Duration) time.Duration { return budget + 500*time.Millisecond + margin }

// outage runs a load of users on a, calls breakIt, waits hold, calls heal, then lets the
// load run until a request succeeds again (at most 30 s) and a little longer. It returns
// the results and how long after heal returned the first request succeeded.
func outage(t *testing.T, a *testApp, users []*loadUser, breakIt, heal func(), hold time.Duration) ([]loadResult, time.Duration) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan []loadResult, 1)
	go func() { done <- load(a.URL, users, stop) }()
	time.Sleep(300 * time.Millisecond) // a moment of healthy load
	breakIt()
	checkDegraded(t, a)
	time.Sleep(hold)
	heal()
	healed := time.Now()
	probe := newAgent(t)
	var back time.Duration
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r := probe.call("GET", a.URL+"/healthz", nil); r.StatusCode == http.StatusOK {
			back = time.Since(healed)
			break
		}
	}
	time.Sleep(time.Second) // every user's loop goes round once more
	close(stop)
	results := <-done
	if back == 0 {
		t.Fatalf("the database did not come back within 30 s of the repair")
	}
	return results, back
}

// checkDegraded checks that /healthz answers degraded, within its 500 ms and a margin.
func checkDegraded(t *testing.T, a *testApp) {
	t.Helper()
	c := newAgent(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		start := time.Now()
		r := c.call("GET", a.URL+"/healthz", nil)
		took := time.Since(start)
		if took > pingTimeout+margin {
			t.Errorf("/healthz took %v with the database away, want about %v", took, pingTimeout)
		}
		var h healthBody
		r.json(t, &h)
		if r.StatusCode == http.StatusServiceUnavailable && h.Status == "degraded" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d %+v 5 s into the outage, want 503 degraded", r.StatusCode, h)
		}
	}
}

// TestDatabaseCrashUnderLoad: the server crashes (kill -9 of the postmaster, or pg_ctl
// stop -m immediate) under a load of logins, /api/me, listings, uploads and downloads,
// stays down longer than the budget, and restarts. Meanwhile every answer is a success or
// a 503 with Retry-After (no 500, no 401), none later than the budget allows, /healthz says
// degraded; afterwards everyone is still logged in and every acknowledged upload is whole.
func TestDatabaseCrashUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*pgtest.Cluster, context.Context) error
	}{{"kill -9", (*pgtest.Cluster).Kill}, {"stop -m immediate", (*pgtest.Cluster).StopImmediate}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			budget := 2 * time.Second
			// Commits flushed at once: a crash loses none (pgtest's default is fast and loose).
			cl := pgtest.NewCluster(t, pgtest.ClusterOptions{Settings: []string{"synchronous_commit=on"}})
			pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
			a := failoverApp(t, cl.DSN("postgres"), budget)
			users := newLoadUsers(t, a.URL, 4)
			results, back := outage(t, a, users,
				func() {
					if err := tc.stop(cl, ctx); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if err := cl.Start(ctx); err != nil {
						t.Fatal(err)
					}
				}, budget+time.Second)
			checkLoad(t, results, maxWait(budget))
			n, longest := unavailableAnswers(results)
			if n == 0 {
				t.Error("no 503 while the database was down longer than the budget")
			}
			t.Logf("down %v with a budget of %v: %d answers 503 (longest %v); healthy %v after the restart",
				budget+time.Second, budget, n, longest.Round(time.Millisecond), back.Round(time.Millisecond))
			checkAfterRecovery(t, a.URL, users, results)
			checkNothingLeft(t, a, users, results)
		})
	}
}

// TestDatabaseVanishesUnderLoad: the database's host goes silent (packets dropped, no
// reset) under load: no request hangs; each returns within the budget (and a margin) with
// a 503, /healthz says degraded within its 500 ms, and all recovers when the network heals.
func TestDatabaseVanishesUnderLoad(t *testing.T) {
	budget := 1500 * time.Millisecond
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
	px := pgtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	a := failoverApp(t, px.DSN(cl.DSN("postgres"))+"&connect_timeout=1", budget)
	t.Cleanup(px.Heal) // before the pool closes
	users := newLoadUsers(t, a.URL, 4)
	results, back := outage(t, a, users, px.Blackhole, px.Heal, 2*budget)
	checkLoad(t, results, maxWait(budget))
	n, longest := unavailableAnswers(results)
	if n == 0 {
		t.Error("no 503 while the database was silent")
	}
	t.Logf("silent %v with a budget of %v: %d answers 503 (longest %v); healthy %v after the network healed",
		2*budget, budget, n, longest.Round(time.Millisecond), back.Round(time.Millisecond))
	checkAfterRecovery(t, a.URL, users, results)
	checkNothingLeft(t, a, users, results)
}

// TestFailoverToStandby: a real failover with a multi-host DATABASE_URL and
// target_session_attrs=read-write: the primary (synchronously replicated) is killed and its
// standby promoted under load. The app follows by itself; meanwhile answers are successes
// or 503; afterwards nobody is logged out and every upload acknowledged before and during
// the failover is on the new primary, whole.
func TestFailoverToStandby(t *testing.T) {
	ctx := t.Context()
	budget := 2 * time.Second
	primary := pgtest.TCPCluster(t, pgtest.ClusterOptions{Settings: []string{"synchronous_commit=on"}})
	admin := pgtest.OpenPool(t, primary.DSN("postgres"), nil, store.Migrate)
	standby, err := pgtest.StartStandby(ctx, primary, pgtest.ClusterOptions{Port: pgtest.FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Close() })
	// From now on a commit returns once the standby has it, as with pg_auto_failover.
	if _, err := admin.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '*'"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write&connect_timeout=1",
		primary.Port(), standby.Port())
	a := failoverApp(t, dsn, budget)
	users := newLoadUsers(t, a.URL, 4)
	var promoted time.Duration
	results, back := outage(t, a, users,
		func() {
			if err := primary.Kill(ctx); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			start := time.Now()
			if err := standby.Promote(ctx); err != nil {
				t.Fatal(err)
			}
			promoted = time.Since(start)
		}, time.Second)
	checkLoad(t, results, maxWait(budget))
	n, longest := unavailableAnswers(results)
	t.Logf("primary killed, standby promoted 1 s later (pg_ctl promote took %v): %d answers 503 (longest %v); healthy %v after the promotion",
		promoted.Round(time.Millisecond), n, longest.Round(time.Millisecond), back.Round(time.Millisecond))
	checkAfterRecovery(t, a.URL, users, results)
	checkNothingLeft(t, a, users, results)
}
