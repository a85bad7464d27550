package pgretry

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether err is a failure that a failover or a restart explains, after
// which the same statement may succeed on a new connection:
//
//   - no connection could be made (*pgconn.ConnectError: every host refused, timed out, was
//     not read-write, or is starting up), unless the server refused us for good (bad
//     password, no such database, no CONNECT privilege);
//   - the connection broke (reset, EOF, unexpected EOF, a timeout of a socket gone silent,
//     or anything pgconn.SafeToRetry says never reached the server);
//   - SQLSTATE class 08 (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown,
//     57P03 cannot_connect_now, and 25006 read_only_sql_transaction (a standby, or a primary
//     that was demoted).
//
// A cancelled context (the caller went away) is not transient.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return !refusedForGood(err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientCode(pgErr.Code)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	for _, e := range []error{syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT} {
		if errors.Is(err, e) {
			return true
		}
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// transientCode reports whether a server error code is one of Transient's.
func transientCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"):
		return true
	case code == "57P01", code == "57P02", code == "57P03", code == "25006":
		return true
	}
	return false
}

// refusedForGood reports whether a connection error carries a server answer that another
// try will not change: authentication (class 28), no such database (3D000), no CONNECT
// privilege (42501). pgx stops trying further hosts on these too.
func refusedForGood(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000" || pgErr.Code == "42501"
}
