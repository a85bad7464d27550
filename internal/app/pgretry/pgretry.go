// Package pgretry runs a PostgreSQL statement once more when its connection was lost, as
// after a database restart, which kills every pooled connection at once: the retry runs on a
// fresh connection, so a blip costs one failed attempt instead of one per pooled connection.
package pgretry

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Once runs f, and if it failed because its connection was lost, closes every pooled
// connection and runs f once more. A statement that pgconn.SafeToRetry says never reached the
// server is always retried; others only if idempotent (reads, idempotent updates and deletes,
// inserts of a new random key), since the server may have run them. Nothing is retried once
// ctx is done.
func Once(ctx context.Context, pool *pgxpool.Pool, idempotent bool, f func() error) error {
	err := f()
	if err == nil || ctx.Err() != nil {
		return err
	}
	if pgconn.SafeToRetry(err) || (idempotent && ConnectionLost(err)) {
		pool.Reset()
		err = f()
	}
	return err
}

// ConnectionLost reports whether err means the connection or the server went away rather
// than the statement failing: an operator-intervention error (57P01 admin_shutdown and the
// like) or a broken socket (but not a timeout, which a retry would only repeat).
func ConnectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57P")
	}
	var netErr net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		(errors.As(err, &netErr) && !netErr.Timeout())
}
