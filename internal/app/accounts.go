package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"time"

	"golang.org/x/crypto/bcrypt"

	"outrigger/internal/app/store"
)

const (
	// loginWindow and loginMaxFailures: 10 failures in 15 minutes from one
	// client IP or for one username, and further logins get 429.
	loginWindow      = 15 * time.Minute
	loginMaxFailures = 10
	minPassword      = 8
	maxPassword      = 72 // bcrypt reads no further
)

var validUsername = regexp.MustCompile(`^[a-z0-9._-]{3,64}$`)

// checkCredentials returns what is wrong with a username and password for
// signup, or "".
func checkCredentials(username, password string) string {
	switch {
	case !validUsername.MatchString(username):
		return "username must be 3 to 64 of a-z, 0-9, '.', '_' and '-'"
	case len(password) < minPassword || len(password) > maxPassword:
		return fmt.Sprintf("password must be %d to %d bytes", minPassword, maxPassword)
	}
	return ""
}

var (
	// errBadCredentials: unknown user or wrong password (never said which).
	errBadCredentials = errors.New("wrong username or password")
	// errBusy: the caller went away while waiting for a hashing slot.
	errBusy = errors.New("too busy")
)

// limitedError is a login refused because of too many failures.
type limitedError struct{ RetryAfter time.Duration }

func (e *limitedError) Error() string { return "too many failed logins; try again later" }

// retryAfterSeconds is the Retry-After value, at least 1.
func (e *limitedError) retryAfterSeconds() int {
	return max(1, int((e.RetryAfter+time.Second-1)/time.Second))
}

// accounts signs people up and checks their passwords. Hashing runs under a
// semaphore (bcrypt is CPU-bound: more at once only adds latency), and an
// unknown username costs the same bcrypt comparison as a known one.
type accounts struct {
	logger *slog.Logger
	st     *store.Store
	cost   int
	slots  chan struct{}
	dummy  []byte // hash compared against for unknown usernames
}

// newAccounts hashes passwords at cost (0 = bcrypt.DefaultCost, else
// clamped to bcrypt's range), at most concurrency at once.
func newAccounts(logger *slog.Logger, st *store.Store, cost, concurrency int) *accounts {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	cost = min(max(cost, bcrypt.MinCost), bcrypt.MaxCost)
	// With a valid cost and a 26-byte password this cannot fail.
	dummy, _ := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	return &accounts{logger: logger, st: st, cost: cost, slots: make(chan struct{}, max(1, concurrency)), dummy: dummy}
}

// hashing runs f holding a hashing slot.
func (a *accounts) hashing(ctx context.Context, f func()) error {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return errBusy
	}
	defer func() { <-a.slots }()
	f()
	return nil
}

// signup creates an account. Errors: store.ErrUsernameTaken, errBusy, or a
// database error.
func (a *accounts) signup(ctx context.Context, username, password string) error {
	var hash []byte
	var herr error
	if err := a.hashing(ctx, func() { hash, herr = bcrypt.GenerateFromPassword([]byte(password), a.cost) }); err != nil {
		return err
	}
	if herr != nil {
		return fmt.Errorf("hash password: %w", herr)
	}
	if _, err := a.st.CreateUser(ctx, username, hash); err != nil {
		return err
	}
	return nil
}

// login checks a username and password from client ip. Errors:
// *limitedError, errBadCredentials, errBusy, or a database error.
//
// Every attempt is counted before its password is checked: a failure row is written first,
// and only once the database has it is the password compared (a right one then clears the
// username's failures). So when the count cannot be written (the database is away past the
// budget, or answers only reads), the answer is 503 whatever the password: an outage never
// lets a guess through uncounted, nor tells a guesser which password was right.
func (a *accounts) login(ctx context.Context, ip netip.Addr, username, password string) (store.User, error) {
	retry, err := a.st.LoginBlocked(ctx, ip, username, loginMaxFailures, loginWindow)
	if err != nil {
		return store.User{}, err
	}
	if retry > 0 {
		return store.User{}, &limitedError{RetryAfter: retry}
	}
	if err := a.st.RecordLoginFailure(ctx, ip, username); err != nil {
		return store.User{}, err
	}

	user, err := a.st.UserByUsername(ctx, username)
	hash := user.PasswordHash
	switch {
	case errors.Is(err, store.ErrNotFound):
		hash = a.dummy
	case err != nil:
		return store.User{}, err
	}
	var ok bool
	if herr := a.hashing(ctx, func() { ok = bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil }); herr != nil {
		return store.User{}, herr
	}
	if !ok || err != nil {
		return store.User{}, errBadCredentials
	}
	// Failures for this username stop counting (this attempt's too, and for its IPs);
	// failures for other usernames from the same IP still count. If this fails, the
	// attempt stays counted: the limit errs on the safe side.
	if err := a.st.ClearLoginFailures(ctx, username); err != nil {
		a.logger.Warn("clear login failures", "err", err)
	}
	return user, nil
}
