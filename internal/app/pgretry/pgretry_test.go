package pgretry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestConnectionLost(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P02"}), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"lock timeout", &pgconn.PgError{Code: "55P03"}, false},
		{"EOF", fmt.Errorf("read: %w", io.EOF), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"reset", fmt.Errorf("write: %w", syscall.ECONNRESET), true},
		{"broken pipe", syscall.EPIPE, true},
		{"refused", refused, true},
		{"net timeout", timeout, false},
		{"context canceled", context.Canceled, false},
		{"other", errors.New("boom"), false},
	}
	for _, tc := range tests {
		if got := ConnectionLost(tc.err); got != tc.want {
			t.Errorf("%s: ConnectionLost(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// neverSent is an error that pgconn.SafeToRetry accepts: the statement never reached the server.
type neverSent struct{}

func (neverSent) Error() string     { return "connection closed before sending" }
func (neverSent) SafeToRetry() bool { return true }

func TestOnce(t *testing.T) {
	// The pool never connects: Once only calls its Reset.
	pool, err := pgxpool.New(t.Context(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	lost := &pgconn.PgError{Code: "57P01"}
	tests := []struct {
		name       string
		idempotent bool
		errs       []error // what f returns on each call
		wantCalls  int
		wantErr    error
	}{
		{"success", false, []error{nil}, 1, nil},
		{"lost, idempotent: retried", true, []error{lost, nil}, 2, nil},
		{"lost, not idempotent: not retried", false, []error{lost, nil}, 1, lost},
		{"never sent, not idempotent: retried", false, []error{neverSent{}, nil}, 2, nil},
		{"lost twice: retried once", true, []error{lost, lost, nil}, 2, lost},
		{"statement error: not retried", true, []error{io.ErrShortWrite, nil}, 1, io.ErrShortWrite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Once(t.Context(), pool, tc.idempotent, func() error {
				calls++
				return tc.errs[calls-1]
			})
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) {
				t.Errorf("got %d calls, %v; want %d, %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
	t.Run("context done: not retried", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := 0
		Once(ctx, pool, true, func() error { calls++; return lost })
		if calls != 1 {
			t.Errorf("got %d calls, want 1", calls)
		}
	})
}
