package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"outrigger/internal/pgtest"
)

// TestBackupAndRestore runs the backup set-up of OPERATIONS.md section 15 against a real
// PostgreSQL on this machine: deploy/postgres/pgbackrest.conf (its paths moved to a
// temporary directory), archiving.sql, backup.sh and restore.sh, with Debian's pgbackrest.
// Rows written after the full backup come back from the archived WAL: all of them when
// restoring to the latest point, and the ones a "mistake" deleted when restoring to the
// moment before it.
func TestBackupAndRestore(t *testing.T) {
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		t.Fatal("pgbackrest is not installed: apt-get install -y pgbackrest (.ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	primary := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	b := newBackupEnv(t, ownerOf(t, primary.Dir()), pgNode{data: filepath.Join(primary.Dir(), "data"), socketDir: primary.Dir(), port: 5432})

	// archiving.sql as the operator runs it, pointed at the test's config file, then a
	// restart (archive_mode needs one).
	conn := connectCluster(t, ctx, primary)
	for _, stmt := range sqlStatements(t, "postgres/archiving.sql") {
		stmt = strings.Replace(stmt, "pgbackrest --stanza", "pgbackrest --config="+b.conf+" --stanza", 1)
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	conn.Close(ctx)
	if err := primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "stanza-create")
	b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "check")

	conn = connectCluster(t, ctx, primary)
	defer conn.Close(context.Background())
	exec1 := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec1("CREATE TABLE rows (id int PRIMARY KEY, note text NOT NULL)")
	exec1("INSERT INTO rows SELECT i, 'before the backup' FROM generate_series(1, 100) i")

	out := b.run(t, ctx, "sh", b.script("backup.sh"), "full")
	if !strings.Contains(out, "full backup") {
		t.Errorf("backup.sh full printed no full backup in its info:\n%s", out)
	}
	backupStop := b.checkInfo(t, ctx)

	// Rows after the backup, one commit each: only the archived WAL has them.
	for i := 101; i <= 200; i++ {
		exec1("INSERT INTO rows VALUES ($1, 'after the backup')", i)
	}
	// pgBackRest picks the backup for a target time by the backup's stop time, in whole
	// seconds: keep the target past the second the backup ended in.
	if d := time.Until(backupStop.Add(1100 * time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
	var beforeMistake time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&beforeMistake); err != nil {
		t.Fatal(err)
	}
	// Commit timestamps are microseconds: keep the mistake clearly after the target.
	time.Sleep(50 * time.Millisecond)
	exec1("DELETE FROM rows WHERE id % 2 = 0") // the mistake
	exec1("INSERT INTO rows VALUES (201, 'after the mistake')")
	// check switches to a new WAL segment and waits until it is in the repository.
	b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "check")

	t.Run("latest", func(t *testing.T) {
		c := b.restore(t, ctx, "")
		checkRows(t, ctx, c, "postgres", 101, "", "after the mistake") // the even ids deleted, then one row
	})
	t.Run("point in time before the mistake", func(t *testing.T) {
		c := b.restore(t, ctx, beforeMistake.UTC().Format("2006-01-02 15:04:05.000000+00"))
		checkRows(t, ctx, c, "postgres", 200, "after the mistake", "after the backup")
	})
}

// TestBackupScriptOnStandby runs backup.sh where PostgreSQL says it is in recovery (a
// psql stand-in): it must take no backup and succeed, so that the timer on the standby
// stays green; bad arguments exit 2; a PostgreSQL that does not answer fails the run.
func TestBackupScriptOnStandby(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("pgbackrest", `echo "pgbackrest $*" >> `+calls)
	tests := []struct {
		name     string
		psql     string
		args     []string
		wantCode int
		wantOut  string
		wantRuns string
	}{
		{"standby", "echo t", nil, 0, "standby", ""},
		{"primary", "echo f", []string{"diff"}, 0, "", "pgbackrest --stanza=outrigger --type=diff backup\npgbackrest --stanza=outrigger info\n"},
		{"primary, full", "echo f", []string{"full"}, 0, "", "pgbackrest --stanza=outrigger --type=full backup\npgbackrest --stanza=outrigger verify\npgbackrest --stanza=outrigger info\n"},
		{"down", "echo 'psql: error: connection refused' >&2; exit 2", nil, 1, "does not answer", ""},
		{"bad type", "echo f", []string{"hourly"}, 2, "usage", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(calls)
			write("psql", tc.psql)
			cmd := exec.Command("sh", append([]string{filepath.Join("postgres", "backup.sh")}, tc.args...)...)
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(string(out), tc.wantOut) {
				t.Errorf("backup.sh %v: exit %d, output %q; want exit %d and %q", tc.args, code, out, tc.wantCode, tc.wantOut)
			}
			runs, _ := os.ReadFile(calls)
			if string(runs) != tc.wantRuns {
				t.Errorf("backup.sh %v ran %q, want %q", tc.args, runs, tc.wantRuns)
			}
		})
	}
}

// checkRows checks the restored table: count rows, one of them noted want, none noted
// notWant.
func checkRows(t *testing.T, ctx context.Context, c *pgtest.Cluster, db string, count int, notWant, want string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The server answers once it is consistent; it promotes when the replay is over.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			t.Fatal(err)
		}
		if !inRecovery {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored server is still in recovery after 2 minutes: it should have promoted; log:\n%s",
				readFile(t, filepath.Join(c.Dir(), "postgres.log")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n, withWant, withNot int
	err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE note = $1), count(*) FILTER (WHERE note = $2)
		FROM rows`, want, notWant).Scan(&n, &withWant, &withNot)
	if err != nil {
		t.Fatal(err)
	}
	if n != count || withWant == 0 || (notWant != "" && withNot != 0) {
		t.Fatalf("restored rows: %d (want %d), %d noted %q (want > 0), %d noted %q (want 0)", n, count, withWant, want, withNot, notWant)
	}
}

func connectCluster(t *testing.T, ctx context.Context, c *pgtest.Cluster) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// sqlStatements are the statements of a .sql file (comments dropped, split on ';' at a
// line end).
func sqlStatements(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(readFile(t, path), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--") || strings.TrimSpace(l) == "" {
			continue
		}
		cur.WriteString(l + "\n")
		if strings.HasSuffix(strings.TrimSpace(l), ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no statements", path)
	}
	return out
}

// ownerOf is the owner of path (a server's directory: the user it runs as, postgres when
// root), so that the repository and the server agree on ownership; nil when that is this
// process's user.
func ownerOf(t *testing.T, path string) *syscall.Credential {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) == os.Geteuid() {
		return nil
	}
	return &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}
}
