package pgretry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"outrigger/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// margin is what a call may take beyond its budget on a loaded machine.
const margin = 1500 * time.Millisecond

// logBuffer collects log lines, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openDB opens a pool on dsn (configured by ConfigurePool) and a DB with budget on it.
func openDB(t *testing.T, dsn string, budget time.Duration) (*DB, *logBuffer) {
	t.Helper()
	pool := pgtest.OpenPool(t, dsn, ConfigurePool, nil)
	logs := &logBuffer{}
	return New(pool, Options{Budget: budget, Logger: slog.New(slog.NewJSONHandler(logs, nil))}), logs
}

// one reads 1 through db.
func one(ctx context.Context, db *DB) error {
	return db.Do(ctx, func(ctx context.Context, q Querier) error {
		var n int
		return q.QueryRow(ctx, "SELECT 1").Scan(&n)
	})
}

// TestTransientRealErrors classifies failures made by a real server.
func TestTransientRealErrors(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	_, dup := conn.Exec(ctx, "INSERT INTO u VALUES (1)")
	noRows := conn.QueryRow(ctx, "SELECT k FROM u WHERE k = 2").Scan(new(int))
	_, syntax := conn.Exec(ctx, "SELEC 1")
	_, readOnly := conn.Exec(ctx, "BEGIN READ ONLY; INSERT INTO u VALUES (3)")
	conn.Exec(ctx, "ROLLBACK")

	victim, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", victim.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	_, terminated := victim.Exec(ctx, "SELECT 1")

	refused := connectErr(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable", deadPort(t)))
	u := strings.Replace(dsn, "/pgtest_", "/nosuchdb_", 1)
	noDatabase := connectErr(t, u)

	px := pgtest.NewProxy(t, proxiedCluster(t))
	px.Blackhole()
	silent := connectErr(t, px.DSN("postgres://postgres@x/postgres?sslmode=disable&connect_timeout=1"))

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"57P01 terminated", terminated, true},
		{"25006 read-only transaction", readOnly, true},
		{"connection refused", refused, true},
		{"connect to a silent host", silent, true},
		{"23505 unique violation", dup, false},
		{"no rows", noRows, false},
		{"42601 syntax error", syntax, false},
		{"3D000 no such database", noDatabase, false},
	}
	for _, tc := range tests {
		if tc.err == nil {
			t.Errorf("%s: the server gave no error", tc.name)
			continue
		}
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestTransientCodesAndNetErrors(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "08003"}, true},
		{fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P02"}), true},
		{&pgconn.PgError{Code: "57P03"}, true},
		{&pgconn.PgError{Code: "57014"}, false}, // query_canceled: a statement_timeout, not a failover
		{&pgconn.PgError{Code: "55P03"}, false},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("write: %w", syscall.ECONNRESET), true},
		{syscall.EPIPE, true},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.Canceled), false},
		{errors.New("closed pool"), false},
		{nil, false},
	}
	for _, tc := range tests {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func connectErr(t *testing.T, dsn string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err == nil {
		c.Close(ctx)
		t.Fatalf("connect %s: succeeded, want an error", dsn)
	}
	return err
}

// deadPort is a port that was bound and closed: connections are refused.
func deadPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proxiedCluster starts a private cluster on TCP and returns its address.
func proxiedCluster(t *testing.T) string {
	t.Helper()
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	return fmt.Sprintf("127.0.0.1:%d", cl.Port())
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		base := maxBackoff
		if attempt < 16 {
			base = min(firstBackoff<<(attempt-1), maxBackoff)
		}
		for range 50 {
			if d := backoff(attempt); d < base/2 || d > base {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
}

// TestRetriesThroughARestart: a call made while the server is down waits for it and
// succeeds once it is back, within the budget; the pool's dead connections are dropped.
func TestRetriesThroughARestart(t *testing.T) {
	ctx := t.Context()
	cl := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	db, logs := openDB(t, cl.DSN("postgres"), 10*time.Second)
	for range 4 { // fill the pool with connections that the restart will kill
		if err := one(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond) // the call below must find the server down
		restarted <- cl.Start(ctx)
	}()
	start := time.Now()
	err := one(ctx, db)
	if serr := <-restarted; serr != nil {
		t.Fatal(serr)
	}
	if err != nil {
		t.Fatalf("call across the restart: %v (after %v)", err, time.Since(start))
	}
	if !strings.Contains(logs.String(), "pool reset") {
		t.Errorf("no pool reset logged; logs:\n%s", logs)
	}
}

// TestUnavailableAfterBudget: with the server down for good, a call gives up after its
// budget with an *UnavailableError that says how many attempts it made.
func TestUnavailableAfterBudget(t *testing.T) {
	ctx := t.Context()
	cl := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	budget := 1500 * time.Millisecond
	db, _ := openDB(t, cl.DSN("postgres"), budget)
	if err := one(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := cl.StopImmediate(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := one(ctx, db)
	took := time.Since(start)
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want an *UnavailableError", err)
	}
	if ue.Attempts < 3 {
		t.Errorf("gave up after %d attempts, want several within %v", ue.Attempts, budget)
	}
	if took < budget-100*time.Millisecond || took > budget+margin {
		t.Errorf("gave up after %v, want about %v", took, budget)
	}
	t.Logf("down: %d attempts in %v", ue.Attempts, took)
}

// TestBlackholedServer: a statement on a connection to a host gone silent does not hang: the
// call gives up within its budget (no reset from the peer ever comes), and the next call
// after the network heals succeeds.
func TestBlackholedServer(t *testing.T) {
	ctx := t.Context()
	px := pgtest.NewProxy(t, proxiedCluster(t))
	budget := time.Second
	db, _ := openDB(t, px.DSN("postgres://postgres@x/postgres?sslmode=disable&connect_timeout=1"), budget)
	if err := one(ctx, db); err != nil {
		t.Fatal(err)
	}
	px.Blackhole()
	for i := range 3 {
		start := time.Now()
		err := one(ctx, db)
		took := time.Since(start)
		var ue *UnavailableError
		if !errors.As(err, &ue) {
			t.Fatalf("call %d: got %v, want *UnavailableError", i, err)
		}
		if took > budget+margin {
			t.Errorf("call %d on a silent host took %v, want at most %v", i, took, budget)
		}
	}
	px.Heal()
	if err := one(ctx, db); err != nil {
		t.Errorf("after the network healed: %v", err)
	}
}

// TestBudgetSharedAndRenewed: the calls made with one context share its budget; Renew gives
// it back.
func TestBudgetSharedAndRenewed(t *testing.T) {
	ctx := t.Context()
	px := pgtest.NewProxy(t, proxiedCluster(t))
	db, _ := openDB(t, px.DSN("postgres://postgres@x/postgres?sslmode=disable&connect_timeout=1"), time.Minute)
	rctx := WithBudget(ctx, 800*time.Millisecond)
	if err := one(rctx, db); err != nil {
		t.Fatal(err)
	}
	px.Blackhole()
	start := time.Now()
	if err := one(rctx, db); err == nil {
		t.Fatal("call on a silent host succeeded")
	}
	px.Heal()
	// The budget is spent: the next call does not even try.
	calls := 0
	err := db.Do(rctx, func(ctx context.Context, q Querier) error { calls++; return nil })
	var ue *UnavailableError
	if !errors.As(err, &ue) || calls != 0 {
		t.Errorf("call with the budget spent: %v after %d attempts; want *UnavailableError and none", err, calls)
	}
	if took := time.Since(start); took > 800*time.Millisecond+margin {
		t.Errorf("two calls took %v in all, want at most the budget", took)
	}
	Renew(rctx)
	if err := one(rctx, db); err != nil {
		t.Errorf("after Renew: %v", err)
	}
}

// TestNotTransientNotRetried: an error that a retry would not change comes back at once.
func TestNotTransientNotRetried(t *testing.T) {
	db, _ := openDB(t, pgtest.DSN(t), time.Minute)
	calls := 0
	err := db.Do(t.Context(), func(ctx context.Context, q Querier) error {
		calls++
		return q.QueryRow(ctx, "SELECT 1 WHERE false").Scan(new(int))
	})
	if !errors.Is(err, pgx.ErrNoRows) || calls != 1 {
		t.Errorf("got %v after %d calls, want pgx.ErrNoRows (unwrapped) after 1", err, calls)
	}
}

// TestReadOnlyServer: writes on a server turned read-only (25006, as on a primary demoted to
// standby) are retried on new connections, and succeed once it takes writes again; while it
// stays read-only, the caller gets an *UnavailableError.
func TestReadOnlyServer(t *testing.T) {
	ctx := t.Context()
	cl := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	db, logs := openDB(t, cl.DSN("postgres"), 2*time.Second)
	admin, err := pgx.Connect(ctx, cl.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE TABLE w (n int)")
	insert := func(ctx context.Context) error {
		return db.Do(ctx, func(ctx context.Context, q Querier) error {
			_, err := q.Exec(ctx, "INSERT INTO w VALUES (1)")
			return err
		})
	}
	if err := insert(ctx); err != nil {
		t.Fatal(err)
	}
	exec("ALTER SYSTEM SET default_transaction_read_only = on")
	exec("SELECT pg_reload_conf()")
	pgtest.WaitSetting(t, db.Pool(), "default_transaction_read_only", "on")
	err = insert(ctx)
	var pgErr *pgconn.PgError
	var ue *UnavailableError
	if !errors.As(err, &ue) || !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("insert on a read-only server: %v, want *UnavailableError after 25006", err)
	}

	done := make(chan error, 1)
	go func() { done <- insert(ctx) }()
	time.Sleep(300 * time.Millisecond) // the insert above is retrying meanwhile
	exec("ALTER SYSTEM RESET default_transaction_read_only")
	exec("SELECT pg_reload_conf()")
	if err := <-done; err != nil {
		t.Errorf("insert once the server takes writes again: %v", err)
	}
	if !strings.Contains(logs.String(), "25006") {
		t.Errorf("the pool reset was not logged with its cause; logs:\n%s", logs)
	}
}

// TestCallerGone: a call whose caller went away stops at once, without an UnavailableError.
func TestCallerGone(t *testing.T) {
	ctx := t.Context()
	px := pgtest.NewProxy(t, proxiedCluster(t))
	db, _ := openDB(t, px.DSN("postgres://postgres@x/postgres?sslmode=disable&connect_timeout=1"), time.Minute)
	if err := one(ctx, db); err != nil {
		t.Fatal(err)
	}
	px.Blackhole()
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := one(cctx, db)
	var ue *UnavailableError
	if err == nil || errors.As(err, &ue) {
		t.Errorf("got %v, want the caller's cancellation", err)
	}
	if took := time.Since(start); took > 200*time.Millisecond+margin {
		t.Errorf("cancelled call returned after %v", took)
	}
	px.Heal() // else closing the pool waits on the silent connection
}

// TestTxRepeatedWhole: a transaction whose connection dies is run again from the start.
func TestTxRepeatedWhole(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	db, _ := openDB(t, dsn, 10*time.Second)
	if err := db.Do(ctx, func(ctx context.Context, q Querier) error {
		_, err := q.Exec(ctx, "CREATE TABLE t (n int)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	err := db.Tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
			return err
		}
		if runs.Add(1) == 1 { // the first run loses its connection before COMMIT
			_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
			return err
		}
		return nil
	})
	if err != nil || runs.Load() != 2 {
		t.Fatalf("Tx: %v after %d runs; want success after 2", err, runs.Load())
	}
	var n int
	if err := db.Pool().QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Errorf("rows after the repeated transaction: %d (%v), want 1", n, err)
	}
}
