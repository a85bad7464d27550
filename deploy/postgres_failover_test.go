package deploy

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"outrigger/internal/pgfailover"
)

// TestBackupAcrossSwitchover runs OPERATIONS.md section 16.13 on a pg_auto_failover
// formation (loopback): both data nodes archive into one repository (archiving.sql),
// backup.sh runs on both and backs up on the primary only, a switchover moves the
// primary, and the WAL of the new primary's timeline reaches the same repository: a
// restore then has every row, written before and after the switchover.
func TestBackupAcrossSwitchover(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: pg_autoctl and postgres run as the postgres user, with their sockets in " + pgfailover.SocketDir)
	}
	opts := pgfailover.LoopbackOptions(t)
	opts.Database = "outrigger"
	// Both data nodes' archive_command, from archiving.sql; each finds its own data
	// directory in $PGDATA (the keeper's environment, which PostgreSQL inherits).
	b := &backupEnv{}
	probe := newBackupEnvFor(t, b)
	opts.Settings = probe
	f := pgfailover.ForTest(t, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	node := func(n *pgfailover.Node) pgNode {
		return pgNode{data: n.PGData(), socketDir: pgfailover.SocketDir, port: n.Port()}
	}
	primary, err := f.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	standby := f.Nodes()[0]
	if standby == primary {
		standby = f.Nodes()[1]
	}
	b.on(node(primary))
	b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "stanza-create")
	b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "check")
	out := b.run(t, ctx, "sh", b.script("backup.sh"), "full")
	if !strings.Contains(out, "full backup") {
		t.Fatalf("backup.sh full on the primary %s made no full backup:\n%s", primary.Name(), out)
	}
	b.on(node(standby))
	if out := b.run(t, ctx, "sh", b.script("backup.sh"), "incr"); !strings.Contains(out, "standby") {
		t.Fatalf("backup.sh on the standby %s: %s", standby.Name(), out)
	}

	uri, err := f.URI(ctx, url.User("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	insert := func(from, to int, note string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS rows (id int PRIMARY KEY, note text NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO rows SELECT i, $3 FROM generate_series($1::int, $2::int) i", from, to, note); err != nil {
			t.Fatal(err)
		}
	}
	insert(1, 100, "before the switchover")
	if err := f.Switchover(ctx); err != nil {
		t.Fatal(err)
	}
	insert(101, 200, "after the switchover")

	// Roles swapped: the new primary archives and backs up, the old one no longer.
	b.on(node(standby))
	b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "check")
	if out := b.run(t, ctx, "sh", b.script("backup.sh"), "incr"); !strings.Contains(out, "incr backup") {
		t.Fatalf("backup.sh incr on the new primary %s made no incremental backup:\n%s", standby.Name(), out)
	}
	b.on(node(primary))
	if out := b.run(t, ctx, "sh", b.script("backup.sh"), "incr"); !strings.Contains(out, "standby") {
		t.Fatalf("backup.sh on the old primary %s, now standby: %s", primary.Name(), out)
	}
	insert(201, 250, "after the incremental backup")
	b.on(node(standby))
	b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "check") // that WAL is in the repository too

	c := b.restore(t, ctx, "")
	for _, note := range []string{"before the switchover", "after the switchover", "after the incremental backup"} {
		checkRows(t, ctx, c, "outrigger", 250, "", note)
	}
}

// newBackupEnvFor fills b with a pgBackRest set-up for a formation's data nodes (the
// stanza's pg1 is set per command, see backupEnv.on) and returns the data nodes'
// archiving settings.
func newBackupEnvFor(t *testing.T, b *backupEnv) map[string]string {
	t.Helper()
	*b = *newBackupEnv(t, ownerOf(t, pgfailover.SocketDir), pgNode{data: "/nonexistent", socketDir: pgfailover.SocketDir, port: 5432})
	settings := b.archivingSettings(t)
	settings["archive_command"] = strings.Replace(settings["archive_command"], " --stanza", ` --pg1-path="$PGDATA" --stanza`, 1)
	return settings
}
