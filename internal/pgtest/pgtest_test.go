package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

// scalar runs a one-value query on dsn.
func scalar[T any](t *testing.T, dsn, sql string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func databaseExists(t *testing.T, adminDSN, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatalf("query pg_database: %v", err)
	}
	return n == 1
}

// checkDSN verifies that DSN gives an empty database of its own, dropped at cleanup.
func checkDSN(t *testing.T, admin func() string) {
	var name string
	t.Run("inner", func(t *testing.T) {
		dsn := DSN(t)
		name = scalar[string](t, dsn, "SELECT current_database()")
		if got := scalar[int](t, dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); got != 0 {
			t.Errorf("tables in new database: got %d, want 0", got)
		}
		other := DSN(t)
		if got := scalar[string](t, other, "SELECT current_database()"); got == name {
			t.Errorf("second DSN: got database %q again, want a different one", got)
		}
		if !databaseExists(t, admin(), name) {
			t.Errorf("database %q: not found while the test runs", name)
		}
	})
	if databaseExists(t, admin(), name) {
		t.Errorf("database %q still exists after cleanup", name)
	}
}

func TestDSNThrowawayCluster(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	checkDSN(t, func() string {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		if shared.cluster == nil {
			t.Fatal("no throwaway cluster was started with DATABASE_URL unset")
		}
		return shared.cluster.DSN("postgres")
	})
	shared.mu.Lock()
	dir := shared.cluster.Dir()
	shared.mu.Unlock()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("cluster dir %s: %v", dir, err)
	}
	if filepath.Dir(dir) != "/tmp" {
		t.Errorf("cluster dir: got %s, want one under /tmp", dir)
	}
}

func TestDSNDatabaseURL(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Port: FreePort(t)})
	admin := c.DSN("postgres")
	t.Setenv("DATABASE_URL", admin)
	checkDSN(t, func() string { return admin })
}

func TestPoolMigrates(t *testing.T) {
	called := 0
	pool := Pool(t, func(ctx context.Context, p *pgxpool.Pool) error {
		called++
		_, err := p.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)")
		return err
	})
	if called != 1 {
		t.Errorf("migrate calls: got %d, want 1", called)
	}
	if _, err := pool.Exec(t.Context(), "INSERT INTO t VALUES (1)"); err != nil {
		t.Errorf("insert into migrated table: %v", err)
	}
}

func TestOpenPoolConfigure(t *testing.T) {
	pool := OpenPool(t, DSN(t), func(c *pgxpool.Config) { c.MaxConns = 1 }, nil)
	if got := pool.Config().MaxConns; got != 1 {
		t.Errorf("MaxConns: got %d, want 1", got)
	}
	if err := pool.Ping(t.Context()); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestClusterStopStart(t *testing.T) {
	ctx := t.Context()
	dir, err := os.MkdirTemp("/tmp", "pgclustertest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := StartCluster(ctx, ClusterOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.Port() != 0 {
		t.Errorf("Port: got %d, want 0", c.Port())
	}
	dsn := c.DSN("postgres")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before stop')"); err != nil {
		t.Fatal(err)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("ping after Stop: got nil error, want the session to be gone")
	}
	conn.Close(ctx)
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Error("connect after Stop: got nil error, want refused")
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := scalar[string](t, dsn, "SELECT v FROM kept"); got != "before stop" {
		t.Errorf("row after restart: got %q, want %q", got, "before stop")
	}

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir after Close: got %v, want it removed", err)
	}
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Error("connect after Close: got nil error, want refused")
	}
}

func TestSweepStale(t *testing.T) {
	// A directory whose owner died: no lock holder, no postmaster.
	stale, err := os.MkdirTemp("/tmp", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stale) })
	if err := os.WriteFile(filepath.Join(stale, "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A live cluster of this process must survive the sweep.
	live := NewCluster(t, ClusterOptions{})

	sweepStale()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale dir: got %v, want it swept", err)
	}
	if _, err := os.Stat(live.Dir()); err != nil {
		t.Errorf("live cluster dir: %v, want it kept", err)
	}
	if got := scalar[int](t, live.DSN("postgres"), "SELECT 1"); got != 1 {
		t.Errorf("live cluster query: got %d, want 1", got)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"},
		{"postgresql://u:p@h/db", "postgresql://u:p@h/x"},
		{"host=/tmp/s user=postgres dbname=postgres", "host=/tmp/s user=postgres dbname=postgres dbname=x"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.in, "x")
		if err != nil || got != tt.want {
			t.Errorf("withDatabase(%q): got %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	mk := func(dir string, names ...string) string {
		d := filepath.Join(root, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(d, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	mk("lib/9.6/bin", "initdb", "postgres")
	v16 := mk("lib/16/bin", "initdb", "postgres")
	mk("lib/17/bin", "initdb") // no server binary: not a candidate
	onPath := mk("usr/bin", "initdb", "postgres")
	pattern := filepath.Join(root, "lib/*/bin")

	tests := []struct {
		name, pattern, path, want string
	}{
		{"highest complete version", pattern, onPath, v16},
		{"from PATH", filepath.Join(root, "none/*/bin"), "/nonexistent" + string(filepath.ListSeparator) + onPath, onPath},
	}
	for _, tt := range tests {
		got, err := findBinDir(tt.pattern, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v, want %q", tt.name, got, err, tt.want)
		}
	}
	_, err := findBinDir(filepath.Join(root, "none/*/bin"), "/nonexistent")
	if !errors.Is(err, ErrNoPostgres) || !strings.Contains(err.Error(), "apt-get install -y postgresql") {
		t.Errorf("no binaries: got %v, want ErrNoPostgres naming the install command", err)
	}
}

// TestDSNParallel: parallel tests each get their own database.
func TestDSNParallel(t *testing.T) {
	names := make(chan string, 8)
	t.Run("group", func(t *testing.T) {
		for i := range 8 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				names <- scalar[string](t, DSN(t), "SELECT current_database()")
			})
		}
	})
	close(names)
	seen := map[string]bool{}
	for n := range names {
		if seen[n] {
			t.Errorf("database %s given to two tests", n)
		}
		seen[n] = true
	}
	if len(seen) != 8 {
		t.Errorf("databases: got %d, want 8", len(seen))
	}
}
