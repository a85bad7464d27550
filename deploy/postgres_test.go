package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// backupEnv is the test's pgBackRest set-up: config, repository, logs and locks in one
// directory the PostgreSQL server's user owns.
type backupEnv struct {
	dir  string
	conf string
	cred *syscall.Credential
	env  []string
}

// pgNode is where pgBackRest and backup.sh find a PostgreSQL server: its data directory,
// and its socket directory and port.
type pgNode struct {
	data, socketDir string
	port            int
}

// env is the environment that points pgbackrest (over its config file) and backup.sh's
// psql at n.
func (n pgNode) env() []string {
	port := strconv.Itoa(n.port)
	return []string{"PGBACKREST_PG1_PATH=" + n.data, "PGBACKREST_PG1_SOCKET_PATH=" + n.socketDir,
		"PGBACKREST_PG1_PORT=" + port, "PGHOST=" + n.socketDir, "PGPORT=" + port, "PGUSER=postgres"}
}

// newBackupEnv writes pgbackrest.conf, with a repository, logs and locks in a new
// directory owned by cred (the server's user), and its stanza's pg1 pointing at n.
func newBackupEnv(t *testing.T, cred *syscall.Credential, n pgNode) *backupEnv {
	t.Helper()
	b := &backupEnv{cred: cred}
	dir, err := os.MkdirTemp("/tmp", "pgbackrest-test-") // not t.TempDir(): postgres must reach it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b.dir = dir
	for _, d := range []string{"", "repo", "log", "lock", "spool"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
		b.chown(t, p)
	}
	b.conf = filepath.Join(dir, "pgbackrest.conf")
	conf := readFile(t, "postgres/pgbackrest.conf")
	if !strings.Contains(conf, "repo1-cipher-pass=REPLACE-WITH-") {
		t.Fatal("pgbackrest.conf: the repo1-cipher-pass placeholder is gone: the test cannot set its own")
	}
	conf = setConfLine(t, conf, "repo1-path", filepath.Join(dir, "repo"))
	conf = setConfLine(t, conf, "repo1-cipher-pass", "test-passphrase-not-secret-0123456789")
	conf = setConfLine(t, conf, "pg1-path", n.data)
	conf = setConfLine(t, conf, "pg1-socket-path", n.socketDir)
	conf = setConfLine(t, conf, "pg1-port", strconv.Itoa(n.port))
	conf = strings.Replace(conf, "[global]\n", "[global]\nlog-path="+filepath.Join(dir, "log")+
		"\nlock-path="+filepath.Join(dir, "lock")+"\nspool-path="+filepath.Join(dir, "spool")+"\n", 1)
	if err := os.WriteFile(b.conf, []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	b.chown(t, b.conf)
	b.on(n)
	return b
}

// on points the following commands at n.
func (b *backupEnv) on(n pgNode) { b.env = append([]string{"PGBACKREST_CONFIG=" + b.conf}, n.env()...) }

// archivingSettings are archiving.sql's settings, its archive_command given the test's
// config file.
func (b *backupEnv) archivingSettings(t *testing.T) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`^ALTER SYSTEM SET ([a-z_]+) = '(.*)';$`)
	out := map[string]string{}
	for _, stmt := range sqlStatements(t, "postgres/archiving.sql") {
		m := re.FindStringSubmatch(stmt)
		if m == nil {
			t.Fatalf("archiving.sql: %q is not ALTER SYSTEM SET name = 'value';", stmt)
		}
		out[m[1]] = strings.Replace(m[2], "pgbackrest --stanza", "pgbackrest --config="+b.conf+" --stanza", 1)
	}
	return out
}

// setConfLine replaces the value of the uncommented key in an ini text.
func setConfLine(t *testing.T, conf, key, value string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=.*$`)
	if !re.MatchString(conf) {
		t.Fatalf("pgbackrest.conf has no %s line", key)
	}
	return re.ReplaceAllLiteralString(conf, key+"="+value)
}

func (b *backupEnv) chown(t *testing.T, p string) {
	t.Helper()
	if b.cred != nil {
		if err := os.Chown(p, int(b.cred.Uid), int(b.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *backupEnv) script(name string) string {
	p, err := filepath.Abs(filepath.Join("postgres", name))
	if err != nil {
		panic(err)
	}
	return p
}

// run runs a command as the server's user with the test's pgBackRest environment, fails
// the test if it fails, and returns its output.
func (b *backupEnv) run(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	out, err := b.runErr(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (b *backupEnv) runErr(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = b.dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + b.dir}, b.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: b.cred}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkInfo checks pgbackrest info (one full backup, WAL archived) and returns when the
// backup ended.
func (b *backupEnv) checkInfo(t *testing.T, ctx context.Context) time.Time {
	t.Helper()
	var info []struct {
		Name    string
		Archive []struct{ Min, Max string }
		Backup  []struct {
			Type      string
			Timestamp struct{ Stop int64 }
		}
		Status struct{ Code int }
	}
	out := b.run(t, ctx, "pgbackrest", "--stanza=outrigger", "--output=json", "info")
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 {
		t.Fatalf("pgbackrest info: %v\n%s", err, out)
	}
	s := info[0]
	if s.Status.Code != 0 || len(s.Backup) != 1 || s.Backup[0].Type != "full" || len(s.Archive) == 0 || s.Archive[0].Max == "" {
		t.Fatalf("pgbackrest info: want status ok, one full backup and archived WAL:\n%s", out)
	}
	return time.Unix(s.Backup[0].Timestamp.Stop, 0)
}

// restore runs restore.sh into a fresh directory (to target, or the latest point) and
// starts PostgreSQL there, which replays the archived WAL and promotes.
func (b *backupEnv) restore(t *testing.T, ctx context.Context, target string) *pgtest.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "pgrestore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b.chown(t, dir)
	args := []string{b.script("restore.sh"), filepath.Join(dir, "data")}
	if target != "" {
		args = append(args, target)
	}
	out := b.run(t, ctx, "sh", args...)
	if !strings.Contains(out, "is ready") {
		t.Fatalf("restore.sh: %s", out)
	}
	autoPath := filepath.Join(dir, "data", "postgresql.auto.conf")
	auto := readFile(t, autoPath)
	for _, want := range []string{"restore_command = 'pgbackrest ", "archive_mode = 'off'"} {
		if !strings.Contains(auto, want) {
			t.Fatalf("the restored postgresql.auto.conf lacks %s:\n%s", want, auto)
		}
	}
	// pgbackrest found the test's config through the environment; the restored server,
	// which fetches WAL with pgbackrest too, needs it named (in production both use
	// /etc/pgbackrest.conf).
	auto = strings.Replace(auto, "restore_command = 'pgbackrest ", "restore_command = 'pgbackrest --config="+b.conf+" ", 1)
	if err := os.WriteFile(autoPath, []byte(auto), 0o600); err != nil {
		t.Fatal(err)
	}
	return pgtest.NewCluster(t, pgtest.ClusterOptions{Dir: dir})
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
