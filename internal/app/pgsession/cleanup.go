package pgsession

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// cleanupLockKey is the pg_try_advisory_lock key that lets one app server at a time delete
// expired sessions.
const cleanupLockKey int64 = 0x6f7574_73657373 // "outsess"

// cleanupBatch is how many expired rows one DELETE statement removes.
const cleanupBatch = 1000

// DeleteExpired deletes expired sessions in batches of 1000 rows per statement, if this
// process gets the cleanup advisory lock; locked reports whether it did (another app server
// holding it is not an error).
func (s *Store) DeleteExpired(ctx context.Context) (deleted int64, locked bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("delete expired sessions: %w", err)
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", cleanupLockKey).Scan(&locked); err != nil {
		return 0, false, fmt.Errorf("delete expired sessions: take lock: %w", err)
	}
	if !locked {
		return 0, false, nil
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", cleanupLockKey); uerr != nil {
			// Never hand a connection that may still hold the lock back to the pool.
			conn.Conn().Close(uctx)
		}
	}()
	for {
		tag, err := conn.Exec(ctx, `DELETE FROM sessions WHERE key IN
			(SELECT key FROM sessions WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`, cleanupBatch)
		if err != nil {
			return deleted, true, fmt.Errorf("delete expired sessions: %w", err)
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < cleanupBatch {
			return deleted, true, nil
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
