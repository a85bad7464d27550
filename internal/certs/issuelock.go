package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoIssuanceLock is returned for a name that is not cached locally while
// the database (and so the issuance lock) is unreachable, and for an ACME
// order that would be placed without the lock.
var ErrNoIssuanceLock = errors.New("certs: certificate cache database unreachable: cannot coordinate issuance")

// errRenewedElsewhere refuses an order for a name whose certificate in the
// database is newer than the one this lb serves: another lb renewed it.
var errRenewedElsewhere = errors.New("certs: another lb renewed this certificate; it is in the cache")

const (
	// lockPollEvery is how often a waiter tries the advisory lock again.
	lockPollEvery = 250 * time.Millisecond
	// orderLockFor bounds how long a lock taken for an order is held when no
	// certificate is stored (the order failed): autocert gives a renewal 10 min.
	orderLockFor = 10 * time.Minute
)

// issueLock runs fn (autocert's GetCertificate for name) under a
// transaction-scoped advisory lock on name, so that of several lbs seeing
// a new name at once only one orders; the others then find its certificate
// in the cache. Within the process, calls for one name are serialised
// first. With the database down, fn runs without the lock only if the
// certificate is in the local cache (an order would then be refused by
// orderGate).
func (c *PGCache) issueLock(ctx context.Context, name string, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, pgLockTimeout)
	defer cancel()
	mu := c.nameLock(name)
	select {
	case mu <- struct{}{}:
		defer func() { <-mu }()
	case <-ctx.Done():
		return fmt.Errorf("wait for issuance of %s: %w", name, ctx.Err())
	}
	select {
	case c.lockSem <- struct{}{}:
		defer func() { <-c.lockSem }()
	case <-ctx.Done():
		return fmt.Errorf("wait for issuance lock on %s: %w", name, ctx.Err())
	}
	tx, err := c.lockName(ctx, name)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("wait for issuance lock on %s: %w", name, ctx.Err())
	}
	if err != nil {
		if c.local != nil && c.hasLocal(ctx, name) {
			return fn()
		}
		return fmt.Errorf("%w (%s): %v", ErrNoIssuanceLock, name, err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }() // releases the lock
	c.hold(name, 1)
	defer c.hold(name, -1)
	return fn()
}

// lockName takes the advisory lock on name in a new transaction. Every call
// to the database has a deadline: the lock is tried without waiting, every
// lockPollEvery, until ctx ends, so that a database that vanishes while
// another lb holds the lock fails this wait within callTimeout.
func (c *PGCache) lockName(ctx context.Context, name string) (pgx.Tx, error) {
	var tx pgx.Tx
	err := c.call(ctx, func(cctx context.Context) error {
		var err error
		tx, err = c.pool.Begin(cctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	for {
		var got bool
		err := c.call(ctx, func(cctx context.Context) error {
			return tx.QueryRow(cctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`, "autocert:"+name).Scan(&got)
		})
		if err == nil && got {
			return tx, nil
		}
		if err == nil {
			t := time.NewTimer(lockPollEvery/2 + rand.N(lockPollEvery/2))
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				err = ctx.Err()
			}
		}
		_ = tx.Rollback(context.Background())
		return nil, err
	}
}

// hold counts (by delta) the issuance locks this process holds on name.
func (c *PGCache) hold(name string, delta int) {
	c.nameMu.Lock()
	defer c.nameMu.Unlock()
	c.held[name] += delta
	if c.held[name] <= 0 {
		delete(c.held, name)
	}
}

// holds reports whether this process holds the issuance lock on name.
func (c *PGCache) holds(name string) bool {
	c.nameMu.Lock()
	defer c.nameMu.Unlock()
	return c.held[name] > 0
}

// orderLock is an issuance lock taken for an order placed outside issueLock
// (autocert's renewals): held until the certificate is stored, the order
// fails, or orderLockFor passes.
type orderLock struct {
	tx    pgx.Tx
	timer *time.Timer
}

// orderGate lets autocert place an ACME order for names only under their
// issuance locks: a name whose lock issueLock holds passes; for another
// (a renewal), the lock is taken here, and kept until the certificate is
// stored (Put) or release(false) is called (the order failed). The order is
// refused with ErrNoIssuanceLock while the database is unreachable (autocert
// retries a renewal 30 to 60 minutes later, serving the certificate it has
// meanwhile), and with errRenewedElsewhere when the database holds a
// certificate for the name that expires after serving's (another lb renewed:
// autocert adopts it from the cache at its next try).
func (c *PGCache) orderGate(ctx context.Context, names []string, serving func(string) *x509.Certificate) (release func(ok bool), err error) {
	var taken []string
	release = func(ok bool) {
		if ok {
			return
		}
		for _, n := range taken {
			c.releaseOrder(n)
		}
	}
	for _, name := range names {
		if c.holds(name) {
			continue
		}
		if err := c.lockForOrder(ctx, name, serving(name)); err != nil {
			release(false)
			return nil, err
		}
		taken = append(taken, name)
	}
	return release, nil
}

func (c *PGCache) lockForOrder(ctx context.Context, name string, serving *x509.Certificate) error {
	ctx, cancel := context.WithTimeout(ctx, pgLockTimeout)
	defer cancel()
	select {
	case c.lockSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for issuance lock on %s: %w", name, ctx.Err())
	}
	tx, err := c.lockName(ctx, name)
	if err != nil {
		<-c.lockSem
		if ctx.Err() != nil {
			return fmt.Errorf("wait for issuance lock on %s: %w", name, ctx.Err())
		}
		return fmt.Errorf("%w (%s): %v", ErrNoIssuanceLock, name, err)
	}
	if data, err := c.dbGet(ctx, name); err == nil && serving != nil {
		if leaf, perr := leafFromPEM(data); perr == nil && leaf.NotAfter.After(serving.NotAfter) {
			_ = tx.Rollback(context.Background())
			<-c.lockSem
			return errRenewedElsewhere
		}
	}
	ol := &orderLock{tx: tx}
	c.nameMu.Lock()
	c.held[name]++
	c.orders[name] = ol
	ol.timer = time.AfterFunc(orderLockFor, func() { c.releaseOrder(name) })
	c.nameMu.Unlock()
	return nil
}

// releaseOrder ends the order lock on name, if one is held.
func (c *PGCache) releaseOrder(name string) {
	c.nameMu.Lock()
	ol := c.orders[name]
	if ol != nil {
		delete(c.orders, name)
		if c.held[name]--; c.held[name] <= 0 {
			delete(c.held, name)
		}
	}
	c.nameMu.Unlock()
	if ol == nil {
		return
	}
	ol.timer.Stop()
	_ = ol.tx.Rollback(context.Background())
	<-c.lockSem
}

// releaseOrders ends every order lock (at Close).
func (c *PGCache) releaseOrders() {
	c.nameMu.Lock()
	var names []string
	for n := range c.orders {
		names = append(names, n)
	}
	c.nameMu.Unlock()
	for _, n := range names {
		c.releaseOrder(n)
	}
}

// hasLocal reports whether the local cache has a certificate for name.
func (c *PGCache) hasLocal(ctx context.Context, name string) bool {
	for _, k := range []string{name, name + "+rsa"} {
		if _, err := c.local.Get(ctx, k); err == nil {
			return true
		}
	}
	return false
}

// nameLock returns the process-wide lock of name (a channel of one slot,
// so that waiting can give up with the context).
func (c *PGCache) nameLock(name string) chan struct{} {
	c.nameMu.Lock()
	defer c.nameMu.Unlock()
	mu := c.names[name]
	if mu == nil {
		mu = make(chan struct{}, 1)
		c.names[name] = mu
	}
	return mu
}
