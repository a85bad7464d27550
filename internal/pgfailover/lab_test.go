package pgfailover

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"outrigger/internal/lab"
)

// TestFormationOnLabHosts runs the monitor and the data nodes each on a host of the lab
// (its own network namespace, reached over the lab's bridge), and crashes the primary's
// host: the link cut and every process killed, as a power cut. The secondary is promoted
// within the bound of the lab's timeouts (Fast), a client host writes through the multi-host URI again, and once
// the old primary's host boots and its keeper runs again it rejoins as secondary with the
// rows written meanwhile. About 60 s on a busy 2-core machine.
func TestFormationOnLabHosts(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Need: []string{"pg_autoctl"}})
	hosts := lab.AddHosts(t, l, "monitor", "db-1", "db-2", "client")
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	f := ForTest(t, Options{
		Monitor:  OnHost("monitor", hosts[0], ports[0]),
		Nodes:    []NodeSpec{OnHost("db-1", hosts[1], ports[1]), OnHost("db-2", hosts[2], ports[2])},
		Dir:      l.Dir() + "/pgfailover",
		Network:  lab.Prefix.String(),
		Database: "outrigger",
		Timeouts: &Fast,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const role, password = "outrigger", "lab-password-5d1c0e7a"
	if err := f.CreateOwner(ctx, role, password); err != nil {
		t.Fatal(err)
	}
	if err := f.AddHBA(ctx, "host outrigger outrigger "+lab.Prefix.String()+" scram-sha-256"); err != nil {
		t.Fatal(err)
	}
	uri, err := f.URI(ctx, url.UserPassword(role, password))
	if err != nil {
		t.Fatal(err)
	}
	client := hosts[3]
	exec := func(ctx context.Context, sql string, args ...any) error {
		cfg, err := pgx.ParseConfig(uri)
		if err != nil {
			return err
		}
		cfg.DialFunc = client.DialContext // every host of the URI is dialled from the client host
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql, args...)
		return err
	}
	if err := exec(ctx, "CREATE TABLE writes (id int PRIMARY KEY)"); err != nil {
		t.Fatalf("from the client host through %s: %v", uri, err)
	}
	if err := exec(ctx, "INSERT INTO writes VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	old, err := f.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldHost := l.Host(old.Name())
	t0 := time.Now()
	if err := oldHost.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	tm := f.Timeouts()
	bound := tm.NodeUnhealthy + tm.PrimaryDemote + 15*time.Second
	pctx, pcancel := context.WithTimeout(ctx, bound)
	s, err := f.WaitFor(pctx, "the secondary to be promoted", func(s State) bool {
		p, ok := s.Primary()
		return ok && p.Name != old.Name()
	})
	pcancel()
	if err != nil {
		t.Fatalf("host %s crashed: not promoted within %v: %v", oldHost.Name(), bound, err)
	}
	promoted := time.Since(t0)
	var wrote time.Duration
	for {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		err := exec(wctx, "INSERT INTO writes VALUES (2) ON CONFLICT DO NOTHING")
		wcancel()
		if err == nil {
			wrote = time.Since(t0)
			break
		}
		if time.Since(t0) > bound {
			t.Fatalf("no write through %s within %v of the crash: %v", uri, bound, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("host %s crashed: promoted after %s (%s); first write through the URI after %s",
		oldHost.Name(), promoted.Round(10*time.Millisecond), s, wrote.Round(10*time.Millisecond))

	t1 := time.Now()
	if err := oldHost.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = f.WaitStable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ns, _ := s.Node(old.Name()); ns.Reported != "secondary" {
		t.Fatalf("%s rejoined as %s, want secondary: %s", old.Name(), ns.Reported, s)
	}
	t.Logf("host %s booted, keeper run: back as secondary after %s", oldHost.Name(), time.Since(t1).Round(10*time.Millisecond))
	conn, err := connect(ctx, old, f.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := conn.QueryRow(ctx, "SELECT count(*) FROM writes").Scan(&n)
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rejoined %s holds %d rows (%v), want both", old.Name(), n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
