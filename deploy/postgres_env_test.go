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

	"outrigger/internal/pgtest"
)

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
