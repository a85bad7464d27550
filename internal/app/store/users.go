package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"outrigger/internal/app/pgretry"
)

// User is an account.
type User struct {
	ID           int64
	Username     string
	PasswordHash []byte // bcrypt
	CreatedAt    time.Time
}

// CreateUser adds an account. It returns ErrUsernameTaken if the username belongs to
// someone else. It is safe to repeat: a repeat after a lost acknowledgement finds the row
// it wrote (same username and same hash, whose salt is unique to this signup) and succeeds.
func (s *Store) CreateUser(ctx context.Context, username string, passwordHash []byte) (User, error) {
	u := User{Username: username, PasswordHash: passwordHash}
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		// The SELECT does not see the CTE's insert (one snapshot), only an earlier one.
		return q.QueryRow(ctx, `WITH ins AS (
				INSERT INTO users (username, password_hash) VALUES ($1, $2)
				ON CONFLICT (username) DO NOTHING RETURNING id, created_at)
			SELECT id, created_at FROM ins
			UNION ALL
			SELECT id, created_at FROM users WHERE username = $1 AND password_hash = $2`,
			username, passwordHash).Scan(&u.ID, &u.CreatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrUsernameTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", username, err)
	}
	return u, nil
}

// UserByUsername returns the account with that username, or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	return s.user(ctx, "username", username)
}

// UserByID returns the account with that id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return s.user(ctx, "id", id)
}

func (s *Store) user(ctx context.Context, column string, v any) (User, error) {
	var u User
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		return q.QueryRow(ctx,
			"SELECT id, username, password_hash, created_at FROM users WHERE "+column+" = $1", v).
			Scan(&u.ID, &u.Username, &u.PasswordHash, &u.CreatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("user by %s %v: %w", column, v, err)
	}
	return u, nil
}

// ipParam is ip for an inet column: NULL when not valid.
func ipParam(ip netip.Addr) any {
	if !ip.IsValid() {
		return nil
	}
	return ip.Unmap()
}

// RecordLoginFailure records one failed login from client ip for username. The app records
// every attempt this way before it checks the password (and clears the username's failures
// when the password was right), so that no guess goes uncounted. A repeat after a lost
// acknowledgement counts the attempt twice, which errs on the side of the limit.
func (s *Store) RecordLoginFailure(ctx context.Context, ip netip.Addr, username string) error {
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		_, err := q.Exec(ctx, "INSERT INTO login_failures (client_ip, username) VALUES ($1, $2)", ipParam(ip), username)
		return err
	})
	if err != nil {
		return fmt.Errorf("record login failure for %q: %w", username, err)
	}
	return nil
}

// CountLoginFailures counts the failed logins of the last window from client ip and for
// username (whatever their IP).
func (s *Store) CountLoginFailures(ctx context.Context, ip netip.Addr, username string, window time.Duration) (byIP, byUser int, err error) {
	err = s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		return q.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM login_failures WHERE client_ip = $1 AND at > now() - $3::interval),
			(SELECT count(*) FROM login_failures WHERE username = $2 AND at > now() - $3::interval)`,
			ipParam(ip), username, window).Scan(&byIP, &byUser)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count login failures: %w", err)
	}
	return byIP, byUser, nil
}

// LoginBlocked reports how long logins from ip or for username stay refused: 0 when fewer
// than limit failures of either kind fall in the last window, else the time until enough of
// them leave the window (at least one second).
func (s *Store) LoginBlocked(ctx context.Context, ip netip.Addr, username string, limit int, window time.Duration) (time.Duration, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("login blocked: limit %d, want > 0", limit)
	}
	// The limit-th newest failure in the window: once it leaves, fewer than limit remain.
	var wait *float64
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		return q.QueryRow(ctx, `SELECT extract(epoch FROM max(w))::float8 FROM (
		(SELECT at + $3::interval - now() AS w FROM login_failures
		  WHERE client_ip = $1 AND at > now() - $3::interval ORDER BY at DESC OFFSET $4 - 1 LIMIT 1)
		UNION ALL
		(SELECT at + $3::interval - now() FROM login_failures
		  WHERE username = $2 AND at > now() - $3::interval ORDER BY at DESC OFFSET $4 - 1 LIMIT 1)) AS f`,
			ipParam(ip), username, window, limit).Scan(&wait)
	})
	if err != nil {
		return 0, fmt.Errorf("check login failures: %w", err)
	}
	if wait == nil {
		return 0, nil
	}
	return max(time.Duration(*wait*float64(time.Second)), time.Second), nil
}

// ClearLoginFailures forgets the failed logins for username (after a successful login).
// Those rows then no longer count for their client IP either; failures for other
// usernames from the same IP stay.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) error {
	if _, err := s.exec(ctx, "DELETE FROM login_failures WHERE username = $1", username); err != nil {
		return fmt.Errorf("clear login failures for %q: %w", username, err)
	}
	return nil
}

// PruneLoginFailures deletes failures older than olderThan; it returns how many.
func (s *Store) PruneLoginFailures(ctx context.Context, olderThan time.Duration) (int64, error) {
	n, err := s.exec(ctx, "DELETE FROM login_failures WHERE at < now() - $1::interval", olderThan)
	if err != nil {
		return 0, fmt.Errorf("prune login failures: %w", err)
	}
	return n, nil
}

// exec runs one statement that is safe to repeat and returns the rows it affected (of its
// last run).
func (s *Store) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := s.db.Do(ctx, func(ctx context.Context, q pgretry.Querier) error {
		tag, err := q.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
