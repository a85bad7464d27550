// Package pgtest gives tests a real, empty PostgreSQL database of their own.
//
// The server is the one at DATABASE_URL (used as the admin DSN: it needs CREATEDB) when that is
// set, else a throwaway cluster started from the machine's initdb/postgres binaries once per
// test binary. Use Run in TestMain so the throwaway cluster is stopped:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// A test that finds no PostgreSQL fails; it never skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// shared is the throwaway cluster of this test binary, started by the first test that needs it.
// Package-level on purpose: one server per test binary, stopped by Run.
var shared struct {
	mu      sync.Mutex
	cluster *Cluster
	err     error
}

// Run runs the tests and then stops the throwaway cluster, if one was started.
// Use it in TestMain: os.Exit(pgtest.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster != nil {
		if err := shared.cluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
		shared.cluster = nil
	}
	return code
}

// adminDSN is DATABASE_URL, else the DSN of the throwaway cluster (started on first use).
func adminDSN(ctx context.Context) (string, error) {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u, nil
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = StartCluster(ctx, ClusterOptions{})
	}
	if shared.err != nil {
		return "", shared.err
	}
	return shared.cluster.DSN("postgres"), nil
}

// DSN creates a fresh empty database for this test and returns its connection string.
// The database is dropped WITH (FORCE) at cleanup.
func DSN(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := adminDSN(ctx)
	if err != nil {
		if errors.Is(err, ErrNoPostgres) {
			t.Fatalf("pgtest: this test needs PostgreSQL: set DATABASE_URL, or install the server binaries with: %s (%v)", InstallHint, err)
		}
		t.Fatalf("pgtest: start throwaway PostgreSQL: %v", err)
	}
	name := dbName(t.Name())
	if err := execSQL(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := execSQL(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// Pool opens a pool on a fresh database (see DSN), runs migrate on it unless nil, and closes
// the pool at cleanup.
func Pool(t testing.TB, migrate func(context.Context, *pgxpool.Pool) error) *pgxpool.Pool {
	t.Helper()
	return OpenPool(t, DSN(t), nil, migrate)
}

// OpenPool opens a pool on dsn, with its config adjusted by configure unless nil (say, a
// smaller MaxConns), runs migrate on it unless nil, and closes the pool at cleanup.
func OpenPool(t testing.TB, dsn string, configure func(*pgxpool.Config), migrate func(context.Context, *pgxpool.Pool) error) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: parse DSN: %v", err)
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if migrate != nil {
		if err := migrate(ctx, pool); err != nil {
			t.Fatalf("pgtest: migrate: %v", err)
		}
	}
	return pool
}

// NewCluster starts a private cluster for this test (see StartCluster), for tests that stop
// and start PostgreSQL, and removes it at cleanup. It fails the test if the cluster does not
// start.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, opts)
	if err != nil {
		t.Fatalf("pgtest: start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("pgtest: close cluster: %v", err)
		}
	})
	return c
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// ClusterOptions.Port (a cluster that must come back on the same address).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// dbName is pgtest_<part of the test name>_<random>, at most 63 bytes.
func dbName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 30 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return "pgtest_" + b.String() + "_" + hex.EncodeToString(randBytes(6))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// withDatabase returns dsn (a URL or keyword/value string) pointing at database db.
func withDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse DATABASE_URL: %w", err)
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	return dsn + " dbname=" + db, nil
}

// WaitSetting waits (up to 10 s) until every idle connection of pool sees the server setting
// name at value: after ALTER SYSTEM and pg_reload_conf(), each backend applies the new
// configuration only once the postmaster's signal reached it.
func WaitSetting(t testing.TB, pool *pgxpool.Pool, name, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conns := pool.AcquireAllIdle(ctx)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for _, c := range conns {
		for {
			var got string
			err := c.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got)
			if err == nil && got == value {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("pgtest: setting %s is %q (%v) on a pooled connection after 10 s, want %q", name, got, err, value)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
