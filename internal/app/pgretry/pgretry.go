// Package pgretry is how the app talks to PostgreSQL through a failover: every call carries
// a deadline, what fails for a reason that passes (see Transient) is repeated with a small,
// jittered, capped backoff on a fresh connection, and all of a request's calls together wait
// on the database at most its Budget (DB_RETRY_TIMEOUT), after which the caller gets an
// *UnavailableError and answers 503.
//
// Only statements that are safe to repeat go through DB.Do and DB.Tx: reads, and writes made
// idempotent by their keys (upserts, inserts with ON CONFLICT DO NOTHING on a key the caller
// chose, deletes), since a statement whose reply was lost may have committed.
//
// A transient failure also resets the pool (at most once a second), so that connections to a
// server that went away, or to a primary that became a standby (25006), are not reused:
// pgx then dials again across the hosts of a multi-host DATABASE_URL and, with
// target_session_attrs=read-write, keeps only the primary.
package pgretry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// DefaultBudget is DB_RETRY_TIMEOUT's default.
	DefaultBudget = 4 * time.Second
	// minAttempt: no attempt starts with less of the budget left.
	minAttempt = 20 * time.Millisecond
	// minStatement is the least time one attempt's statements get (see DB.statementTimeout).
	minStatement = 250 * time.Millisecond
	// firstBackoff and maxBackoff bound the wait between attempts (before jitter).
	firstBackoff = 25 * time.Millisecond
	maxBackoff   = 500 * time.Millisecond
	// resetGap is the least time between two pool resets.
	resetGap = time.Second
	// closeTimeout bounds closing a connection that failed.
	closeTimeout = 250 * time.Millisecond
)

// Querier is what a call's function runs its statements on: one pooled connection.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Options configures a DB.
type Options struct {
	// Budget is how long one call may wait on the database when its context carries no
	// Budget (background work); 0 means DefaultBudget.
	Budget time.Duration
	// Logger receives a line for each pool reset (at most one a second); nil discards.
	Logger *slog.Logger
}

// DB runs calls on a pool with deadlines and retries. It is safe for concurrent use.
type DB struct {
	pool      *pgxpool.Pool
	budget    time.Duration
	log       *slog.Logger
	lastReset atomic.Int64 // unix nanoseconds of the last pool reset
}

// New returns a DB on pool.
func New(pool *pgxpool.Pool, opts Options) *DB {
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &DB{pool: pool, budget: opts.Budget, log: opts.Logger}
}

// Pool is the underlying pool (for what must not be retried, such as migrations).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// ConfigurePool sets what a failover needs on a pool's configuration when the connection
// string does not say: connect_timeout 2s (per host: a vanished host listed first costs that
// much on every new connection), and a 1s bound on the liveness ping of a connection idle
// for more than a second (pgxpool's own default is no bound).
func ConfigurePool(cfg *pgxpool.Config) {
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = time.Second
	}
}

// UnavailableError is a call that failed for a transient reason until its budget was spent.
type UnavailableError struct {
	Attempts int
	Waited   time.Duration
	Err      error // the last attempt's error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("database unavailable for %v (%d attempts): %v", e.Waited.Round(time.Millisecond), e.Attempts, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Do runs f on a pooled connection. f must be safe to repeat (see the package comment) and
// must use the context it is given, which carries the attempt's deadline. An error of f that
// is not transient (pgx.ErrNoRows, a unique violation...) is returned as is, at once.
func (db *DB) Do(ctx context.Context, f func(ctx context.Context, q Querier) error) error {
	return db.run(ctx, func(ctx context.Context, c *pgxpool.Conn) error { return f(ctx, c) })
}

// Tx runs f in a transaction on a pooled connection, committed if f returns nil and rolled
// back otherwise; the whole transaction is repeated on a transient failure, so it must be
// safe to repeat as a whole.
func (db *DB) Tx(ctx context.Context, f func(ctx context.Context, tx pgx.Tx) error) error {
	return db.run(ctx, func(ctx context.Context, c *pgxpool.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error { return f(ctx, tx) })
	})
}

func (db *DB) run(ctx context.Context, f func(context.Context, *pgxpool.Conn) error) error {
	b := budgetFrom(ctx)
	if b == nil {
		b = &Budget{total: db.budget}
	}
	start := time.Now()
	defer func() { b.spend(time.Since(start)) }()
	left := b.left()
	if left < minAttempt {
		return &UnavailableError{Err: errors.New("the request's database budget is spent")}
	}
	callCtx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	stmt := statementTimeout(b.total)
	var cause error // the last failure not caused by the budget's own deadline
	unavailable := func(attempts int, err error) error {
		if cause == nil || callCtx.Err() == nil {
			cause = err
		}
		return &UnavailableError{Attempts: attempts, Waited: time.Since(start), Err: cause}
	}
	for attempt := 1; ; attempt++ {
		err := db.attempt(callCtx, stmt, f)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return err // the caller went away: nobody waits for an answer
		case !Transient(err):
			return err // an answer (no rows, a constraint...), even at the last moment
		case callCtx.Err() != nil:
			return unavailable(attempt, err)
		}
		cause = err
		db.reset(err)
		deadline, _ := callCtx.Deadline()
		rest := time.Until(deadline)
		if rest < minAttempt*2 {
			return unavailable(attempt, err)
		}
		t := time.NewTimer(min(backoff(attempt), rest/2))
		select {
		case <-t.C:
		case <-callCtx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return err
			}
			return unavailable(attempt, err)
		}
	}
}

// statementTimeout is how long one attempt's statements may run (the connection's acquisition
// is bounded by the whole budget instead, since dialling may have to try every host): half
// the budget, so that a statement stuck on a vanished host leaves time for another attempt.
func statementTimeout(budget time.Duration) time.Duration {
	return max(budget/2, minStatement)
}

// attempt acquires a connection (bounded by ctx, the rest of the budget) and runs f on it
// with at most stmt of it. A connection whose statement failed for a transient reason is
// closed rather than returned to the pool.
func (db *DB) attempt(ctx context.Context, stmt time.Duration, f func(context.Context, *pgxpool.Conn) error) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	sctx, cancel := context.WithTimeout(ctx, stmt)
	defer cancel()
	err = f(sctx, conn)
	if err != nil && Transient(err) && !conn.Conn().IsClosed() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		_ = conn.Conn().Close(cctx) // a closed connection is destroyed on Release
		ccancel()
	}
	return err
}

// reset closes every pooled connection (those in use when they are released), unless the
// pool was reset less than resetGap ago: connections made since then are to the server that
// answers now.
func (db *DB) reset(cause error) {
	now := time.Now().UnixNano()
	last := db.lastReset.Load()
	if now-last < int64(resetGap) || !db.lastReset.CompareAndSwap(last, now) {
		return
	}
	db.pool.Reset()
	db.log.Warn("database connection failed; pool reset, retrying", "err", cause)
}

// backoff is the wait after the attempt-th failed attempt: firstBackoff doubling up to
// maxBackoff, with equal jitter (between half and all of it).
func backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 16 {
		d = min(firstBackoff<<(attempt-1), maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}
