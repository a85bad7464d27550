// Package store keeps the app's users, login failures and files in PostgreSQL.
//
// Nothing here touches the disk: files are stored as 256 KiB bytea chunks, written and read
// one short statement per chunk, so no transaction stays open for a whole transfer.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app/pgretry"
)

var (
	// ErrNotFound means no such user or file (or not the caller's, or not fully uploaded).
	ErrNotFound = errors.New("not found")
	// ErrUsernameTaken means a user with that username exists.
	ErrUsernameTaken = errors.New("username taken")
)

// Store is the app's data in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool. The schema must be migrated (see Migrate).
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// retry runs f, and once more on a fresh connection if its connection was lost (see
// pgretry.Once). readOnly: f may run twice (reads); writes are retried only when
// pgconn.SafeToRetry says they never reached the server.
func (s *Store) retry(ctx context.Context, readOnly bool, f func() error) error {
	return pgretry.Once(ctx, s.pool, readOnly, f)
}
