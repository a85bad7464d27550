package pgsession

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"outrigger/internal/app/pgretry"
)

// cleanupLockKey is the pg_try_advisory_xact_lock key that lets one app server at a time
// delete expired sessions.
const cleanupLockKey int64 = 0x6f7574_73657373 // "outsess"

// cleanupBatch is how many expired rows one DELETE statement removes.
const cleanupBatch = 1000

// cleanupBudget bounds each batch of the cleanup (retries included), in the background.
const cleanupBudget = time.Minute

// DeleteExpired deletes expired sessions in batches of 1000 rows, each in its own short
// transaction that first takes the cleanup advisory lock (without waiting); locked reports
// whether the first batch got it (another app server holding it is not an error). A batch
// whose connection fails is repeated (deleting expired rows twice is harmless), and a lock
// dies with its transaction, so a failover never leaves it held.
func (s *Store) DeleteExpired(ctx context.Context) (deleted int64, locked bool, err error) {
	for {
		var got bool
		var n int64
		bctx := pgretry.WithBudget(ctx, cleanupBudget)
		err := s.db.Tx(bctx, func(ctx context.Context, tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", cleanupLockKey).Scan(&got); err != nil || !got {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE key IN
				(SELECT key FROM sessions WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`, cleanupBatch)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return deleted, locked, fmt.Errorf("delete expired sessions: %w", err)
		}
		if !got {
			return deleted, locked, nil // another app server is at it
		}
		locked = true
		deleted += n
		if n < cleanupBatch {
			return deleted, locked, nil
		}
	}
}

// Cleanup calls DeleteExpired now and then every interval until ctx is done. Every app
// server may run it: the advisory lock lets one at a time do the work.
func (s *Store) Cleanup(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, locked, err := s.DeleteExpired(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log(ctx, slog.LevelWarn, "delete expired sessions", "err", err)
		case locked && n > 0:
			s.log(ctx, slog.LevelInfo, "deleted expired sessions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Store) log(ctx context.Context, level slog.Level, msg string, args ...any) {
	if s.logger != nil {
		s.logger.Log(ctx, level, msg, args...)
	}
}
