// Package store keeps the app's users, login failures and files in PostgreSQL.
//
// Nothing here touches the disk: files are stored as 256 KiB bytea chunks, written and read
// one short statement per chunk, so no transaction stays open for a whole transfer.
//
// Every statement goes through pgretry, so it has a deadline and is repeated while the
// database fails over, within the request's budget; every write is therefore safe to
// repeat: chunks are keyed by (file, index), a file's row by an id chosen here, a signup
// recognises its own row, and deletes and updates are idempotent.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	db *pgretry.DB

	mu     sync.Mutex
	failed []string // failed uploads whose deletion failed too (see DeleteFailedUploads)
}

// New returns a Store on db. The schema must be migrated (see Migrate).
func New(db *pgretry.DB) *Store {
	return &Store{db: db}
}

// Ping checks that the database answers (once: the caller's context bounds it).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.Pool().Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}
