// Package store keeps the app's users, login failures and files in PostgreSQL.
//
// Nothing here touches the disk: files are stored as 256 KiB bytea chunks, written and read
// one short statement per chunk, so no transaction stays open for a whole transfer.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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

// retry runs f, and once more after closing every pooled connection if f failed because its
// connection was lost (a database restart kills the whole pool at once). Use it only for
// statements that may run twice: reads, and writes that pgconn.SafeToRetry says never reached
// the server (readOnly false).
func (s *Store) retry(ctx context.Context, readOnly bool, f func() error) error {
	err := f()
	if err == nil || ctx.Err() != nil {
		return err
	}
	if pgconn.SafeToRetry(err) || (readOnly && connectionLost(err)) {
		s.pool.Reset()
		err = f()
	}
	return err
}

// connectionLost reports whether err means the connection or the server went away rather
// than the statement failing: an operator-intervention error (57P01 admin_shutdown and the
// like) or a broken socket.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57P")
	}
	var netErr net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		(errors.As(err, &netErr) && !netErr.Timeout())
}
