package pgfailover

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// runs is how many times TestFormation repeats each fault (PGFAILOVER_RUNS, default 1
// crash, 1 switchover and 1 postgres kill: the test stays near 90 s on a busy machine).
func runs(t *testing.T, def int) int {
	if v := os.Getenv("PGFAILOVER_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PGFAILOVER_RUNS=%q: want a positive number", v)
		}
		return n
	}
	return def
}

// TestFormation brings up a monitor and two data nodes on loopback and breaks them:
// synchronous replication, the application's role and pg_hba, a killed postgres, planned
// switchovers, a crashed primary and its rejoin; and nothing left behind at the end. The
// times it logs are from a busy shared machine: they show the order of magnitude only.
func TestFormation(t *testing.T) {
	opts := LoopbackOptions(t)
	// As in production (OPERATIONS.md): TLS and passwords between the nodes, and no
	// trust for TCP from loopback, so that the passwords are what lets them in here too.
	opts.Secure = &Security{MonitorPassword: "monitor-1c0a9e55d2b87f4e", ReplicationPassword: "replication-7f3d21b9e0c46a85"}
	f := ForTest(t, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	uri := appRole(t, ctx, f)
	checkSynchronous(t, ctx, f, uri)
	w := startWriter(t, uri)
	if _, err := w.recoveredAfter(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}

	t.Run("kill postgres", func(t *testing.T) {
		// The keeper starts PostgreSQL again at once; but if it reports PostgreSQL down to
		// the monitor first, the monitor counts the primary unhealthy and fails over
		// (pg_auto_failover's IsUnhealthy): on a loaded machine it often does.
		var outage stats
		failovers := 0
		n := runs(t, 1)
		for range n {
			before, err := f.Primary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			pid, err := before.KillPostgres()
			if err != nil {
				t.Fatal(err)
			}
			back, err := w.recoveredAfter(ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			outage = append(outage, back.Sub(t0))
			// Stable, and the monitor told since that PostgreSQL runs again: a failover it
			// was to start on the keeper's first report (PostgreSQL down) has started.
			if _, err := f.WaitFor(ctx, "the monitor to see postgres back", func(s State) bool {
				ns, _ := s.Node(before.Name())
				return s.Stable() && ns.PGRunning && ns.ReportedAt.After(back)
			}); err != nil {
				t.Fatal(err)
			}
			if again, err := before.PostmasterPID(); err != nil || again == pid {
				t.Fatalf("postgres of %s was not restarted: pid %d (%v), killed %d", before.Name(), again, err, pid)
			}
			if after, err := f.Primary(ctx); err != nil {
				t.Fatal(err)
			} else if after != before {
				failovers++
				logEvents(t, ctx, f, 12)
			}
		}
		t.Logf("postgres of the primary SIGKILLed, the keeper restarts it: write outage %s; the monitor failed over in %d of %d run(s)", outage, failovers, n)
		checkNoneLost(t, ctx, f, w)
	})

	t.Run("switchover", func(t *testing.T) {
		var took, outage stats
		for range runs(t, 1) {
			before, err := f.Primary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			if err := f.Switchover(ctx); err != nil {
				t.Fatal(err)
			}
			took = append(took, time.Since(t0))
			if _, err := w.recoveredAfter(ctx, time.Now()); err != nil {
				t.Fatal(err)
			}
			outage = append(outage, w.maxGap(t0, time.Now()))
			after, err := f.Primary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if after == before {
				t.Fatalf("after a switchover %s is still the primary", after.Name())
			}
		}
		t.Logf("pg_autoctl perform switchover: command %s; write outage %s", took, outage)
		checkNoneLost(t, ctx, f, w)
	})

	t.Run("crash primary", func(t *testing.T) {
		tm := f.Timeouts()
		// Detection, the demote wait, promotion, plus room for a loaded 2-core machine.
		bound := tm.NodeUnhealthy + tm.PrimaryDemote + 15*time.Second
		var promoted, outage, rejoined stats
		for range runs(t, 1) {
			old, err := f.Primary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			if err := old.Kill(); err != nil {
				t.Fatal(err)
			}
			pctx, pcancel := context.WithTimeout(ctx, bound)
			s, err := f.WaitFor(pctx, "the secondary to be promoted", func(s State) bool {
				p, ok := s.Primary()
				return ok && p.Name != old.Name()
			})
			pcancel()
			if err != nil {
				t.Fatalf("not promoted within the tuned bound %v: %v", bound, err)
			}
			promoted = append(promoted, time.Since(t0))
			back, err := w.recoveredAfter(ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			outage = append(outage, back.Sub(t0))
			t.Logf("after the crash: %s", s)
			checkNoneLost(t, ctx, f, w)

			t1 := time.Now()
			if err := old.Run(ctx); err != nil {
				t.Fatal(err)
			}
			s, err = f.WaitStable(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ns, _ := s.Node(old.Name()); ns.Reported != "secondary" {
				t.Fatalf("the old primary rejoined as %s, want secondary: %s", ns.Reported, s)
			}
			rejoined = append(rejoined, time.Since(t1))
		}
		t.Logf("primary's keeper and postgres SIGKILLed: secondary promoted (monitor) %s; write outage %s; old primary back as secondary %s",
			promoted, outage, rejoined)
		checkNoneLost(t, ctx, f, w)
	})

	t.Run("close leaves nothing", func(t *testing.T) {
		nodes := append([]*Node{f.Monitor()}, f.Nodes()...)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if pids := n.processes(); len(pids) > 0 {
				t.Errorf("node %s: processes %v survive Close", n.Name(), pids)
			}
			if _, err := os.Stat(n.Dir()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("node %s: %s survives Close (%v)", n.Name(), n.Dir(), err)
			}
			sock := filepath.Join(SocketDir, ".s.PGSQL."+strconv.Itoa(n.Port()))
			for _, p := range []string{sock, sock + ".lock"} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("node %s: %s survives Close", n.Name(), p)
				}
			}
		}
		if _, err := os.Stat(f.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survives Close", f.dir)
		}
	})
}

// appRole creates the application's role as the owner of the database, lets it in from
// 127.0.0.2 only with its password (pg_hba on both data nodes), creates the test's table
// as that role (PostgreSQL 15: only the owner may create in public), and returns the
// role's multi-host URI (connect with connectApp).
func appRole(t *testing.T, ctx context.Context, f *Formation) string {
	t.Helper()
	const role, password = "outrigger", "correct horse battery staple"
	if err := f.CreateOwner(ctx, role, password); err != nil {
		t.Fatal(err)
	}
	// A client from 127.0.0.2 gets this record, and no other.
	if err := f.AddHBA(ctx, "hostssl "+f.Database()+" "+role+" 127.0.0.2/32 scram-sha-256"); err != nil {
		t.Fatal(err)
	}
	if err := f.AddHBA(ctx, "host all all 127.0.0.2/32 bogus-method"); err == nil {
		t.Error("AddHBA took a record PostgreSQL cannot parse")
	}
	uri, err := f.URI(ctx, url.UserPassword(role, password))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Nodes() {
		if !strings.Contains(uri, n.HostPort()) {
			t.Fatalf("URI %s lacks node %s (%s)", uri, n.Name(), n.HostPort())
		}
	}
	if !strings.Contains(uri, "connect_timeout=2") || !strings.Contains(uri, "target_session_attrs=read-write") {
		t.Fatalf("URI %s lacks connect_timeout=2 or target_session_attrs=read-write", uri)
	}
	// Undo the bogus record, or no node could reload its pg_hba.conf again.
	for _, n := range f.Nodes() {
		p := filepath.Join(n.PGData(), "pg_hba.conf")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "host all all 127.0.0.2/32 bogus-method\n", "")), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	wrong, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	wrong.User = url.UserPassword(role, "wrong")
	var pgErr *pgconn.PgError
	if _, err := connectApp(ctx, wrong.String()); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("a wrong password: %v, want SQLSTATE 28P01 (password authentication failed)", err)
	}
	conn, err := connectApp(ctx, uri)
	if err != nil {
		t.Fatalf("connect as %s from 127.0.0.2: %v", role, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		t.Fatalf("the owner cannot create a table in public: %v", err)
	}
	return uri
}

// logEvents logs the monitor's last n events, as pg_autoctl show events prints them.
func logEvents(t *testing.T, ctx context.Context, f *Formation, n int) {
	t.Helper()
	evs, err := f.Events(ctx, n)
	if err != nil {
		t.Logf("events: %v", err)
		return
	}
	for _, e := range evs {
		t.Logf("event %s %s %s->%s: %s", e.At.Format("15:04:05.000"), e.Node, e.Reported, e.Assigned, e.Description)
	}
}

// connectApp connects through uri as the application would, from 127.0.0.2, which
// pg_autoctl's trust records (127.0.0.1) do not cover: the role's password and the
// pg_hba record AddHBA added decide.
func connectApp(ctx context.Context, uri string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	cfg.DialFunc = d.DialContext
	return pgx.ConnectConfig(ctx, cfg)
}

// checkSynchronous checks that the primary replicates synchronously to the secondary and
// that a committed row is on both nodes.
func checkSynchronous(t *testing.T, ctx context.Context, f *Formation, uri string) {
	t.Helper()
	p, err := f.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := connect(ctx, p, f.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	var names, syncState string
	if err := pc.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&names); err != nil || names == "" {
		t.Fatalf("synchronous_standby_names = %q (%v), want it set", names, err)
	}
	if err := pc.QueryRow(ctx, "SELECT sync_state FROM pg_stat_replication").Scan(&syncState); err != nil ||
		(syncState != "sync" && syncState != "quorum") {
		t.Fatalf("pg_stat_replication.sync_state = %q (%v), want sync or quorum", syncState, err)
	}
	t.Logf("synchronous_standby_names = %s; sync_state = %s", names, syncState)

	conn, err := connectApp(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "INSERT INTO writes (id) VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Nodes() {
		if n == p {
			continue
		}
		sc, err := connect(ctx, n, f.Database())
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close(context.Background())
		// A synchronous commit is flushed on the standby; replay follows at once.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var inRecovery, found bool
			err := sc.QueryRow(ctx, "SELECT pg_is_in_recovery(), EXISTS (SELECT FROM writes WHERE id = 0)").Scan(&inRecovery, &found)
			if err == nil && !inRecovery {
				t.Fatalf("node %s is not a standby", n.Name())
			}
			if err == nil && found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the committed row is not on the standby %s after 10s (%v)", n.Name(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
