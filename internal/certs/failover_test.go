package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/acme/autocert"

	"outrigger/internal/lbconfig"
	"outrigger/internal/lbtest"
	"outrigger/internal/pgtest"
)

// margin is what a bounded call may take beyond its bound on a loaded machine.
const margin = 2 * time.Second

// certPEM is a certificate for name in autocert's cache format (key, then
// chain), valid for validFor, and its leaf.
func certPEM(t *testing.T, serial int64, validFor time.Duration, name string) ([]byte, *x509.Certificate) {
	t.Helper()
	certFile, keyFile, leaf := lbtest.SelfSigned(t, t.TempDir(), serial, validFor, name)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return append(key, cert...), leaf
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// TestPGCacheBoundedWhenSilent: the database's host goes silent (no reset): a cache call
// waits at most callTimeout, then the local cache answers; for downFor the database is not
// tried again (calls answer at once); issuance and orders are refused, not left hanging.
// When the network heals, the cache uses the database again.
func TestPGCacheBoundedWhenSilent(t *testing.T) {
	ctx := t.Context()
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	px := pgtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	pool := pgtest.OpenPool(t, px.DSN(cl.DSN("postgres"))+"&connect_timeout=1", nil, nil)
	t.Cleanup(px.Heal) // before the pool closes
	c, local, logs := newTestPGCache(t, pool, testSecret)
	c.callTimeout, c.downFor = time.Second, 3*time.Second
	data, _ := certPEM(t, 1, time.Hour, "a.test")
	if err := c.Put(ctx, "a.test", data); err != nil {
		t.Fatal(err)
	}

	px.Blackhole()
	var got []byte
	var err error
	if d := timed(func() { got, err = c.Get(ctx, "a.test") }); d > c.callTimeout+margin {
		t.Errorf("Get on a silent database took %v, want at most %v", d, c.callTimeout)
	}
	if err != nil || string(got) != string(data) {
		t.Fatalf("Get on a silent database: %v; want the cache_dir value", err)
	}
	if !logs.HasLine("database unreachable") {
		t.Errorf("no line about the database; logs:\n%s", logs)
	}
	for _, step := range []struct {
		name string
		f    func() error
	}{
		{"Get", func() error { _, err := c.Get(ctx, "a.test"); return err }},
		{"Put", func() error { return c.Put(ctx, "b.test", data) }},
		{"issueLock of a new name", func() error {
			err := c.issueLock(ctx, "new.test", func() error { return errors.New("fn ran without the lock") })
			if !errors.Is(err, ErrNoIssuanceLock) {
				return fmt.Errorf("got %v, want ErrNoIssuanceLock", err)
			}
			return nil
		}},
		{"orderGate", func() error {
			_, err := c.orderGate(ctx, []string{"a.test"}, func(string) *x509.Certificate { return nil })
			if !errors.Is(err, ErrNoIssuanceLock) {
				return fmt.Errorf("got %v, want ErrNoIssuanceLock", err)
			}
			return nil
		}},
	} {
		var err error
		if d := timed(func() { err = step.f() }); d > 500*time.Millisecond {
			t.Errorf("%s while the database is known down took %v, want it at once", step.name, d)
		}
		if err != nil {
			t.Errorf("%s while the database is known down: %v", step.name, err)
		}
	}
	if got, err := local.Get(ctx, "b.test"); err != nil || string(got) != string(data) {
		t.Errorf("Put while down did not keep the value in cache_dir: %v", err)
	}

	px.Heal()
	lbtest.WaitFor(t, 20*time.Second, "the cache to use the database again", func() bool {
		_, err := c.dbGet(ctx, "a.test")
		return err == nil
	})
	if !logs.HasLine("database reachable again") {
		t.Errorf("no line about the database being back; logs:\n%s", logs)
	}
}

// TestPGCacheMultiHostFailover: cache_database_url in the multi-host form, the standby
// listed first: target_session_attrs=read-write finds the primary; when the primary dies
// and the standby is promoted, the cache follows, with what was stored before.
func TestPGCacheMultiHostFailover(t *testing.T) {
	ctx := t.Context()
	primary := pgtest.TCPCluster(t, pgtest.ClusterOptions{Settings: []string{"synchronous_commit=on"}})
	standby, err := pgtest.StartStandby(ctx, primary, pgtest.ClusterOptions{Port: pgtest.FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Close() })
	admin := pgtest.OpenPool(t, primary.DSN("postgres"), nil, nil)
	for _, q := range []string{"ALTER SYSTEM SET synchronous_standby_names = '*'", "SELECT pg_reload_conf()"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		standby.Port(), primary.Port())
	logger, _ := newLogger()
	c, err := newPGCacheFromConfig(ctx, lbconfig.ACME{CacheDatabaseURL: url, CacheKeyFile: writeKeyFile(t)}, autocert.DirCache(t.TempDir()), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.downFor = time.Second
	before, _ := certPEM(t, 1, time.Hour, "a.test")
	if err := c.Put(ctx, "a.test", before); err != nil {
		t.Fatal(err)
	}
	if _, err := c.dbGet(ctx, "a.test"); err != nil {
		t.Fatalf("read back through the multi-host URL: %v", err)
	}

	if err := primary.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := certPEM(t, 2, time.Hour, "b.test")
	lbtest.WaitFor(t, 20*time.Second, "the cache to write to the promoted standby", func() bool {
		return c.dbPut(ctx, "b.test", after) == nil
	})
	for key, want := range map[string][]byte{"a.test": before, "b.test": after} {
		got, err := c.dbGet(ctx, key)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s on the new primary: %v", key, err)
		}
	}
}

// TestOrderGate: an order outside issueLock (a renewal) takes the name's advisory lock and
// holds it until the certificate is stored; another lb's order for the name waits for it,
// then finds the newer certificate in the database and is refused (it adopts that one);
// a failed order releases the lock at once.
func TestOrderGate(t *testing.T) {
	ctx := t.Context()
	pool1 := pgtest.Pool(t, nil)
	pool2 := pgtest.OpenPool(t, pool1.Config().ConnString(), nil, nil)
	lb1, _, _ := newTestPGCache(t, pool1, testSecret)
	lb2, _, _ := newTestPGCache(t, pool2, testSecret)
	old, oldLeaf := certPEM(t, 1, time.Hour, "a.test")
	renewed, _ := certPEM(t, 2, 90*24*time.Hour, "a.test")
	if err := lb1.Put(ctx, "a.test", old); err != nil {
		t.Fatal(err)
	}
	serving := func(string) *x509.Certificate { return oldLeaf }
	advisoryLocks := func() int {
		return count(t, pool1, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	}

	if _, err := lb1.orderGate(ctx, []string{"a.test"}, serving); err != nil {
		t.Fatalf("lb1's renewal order: %v", err)
	}
	if n := advisoryLocks(); n != 1 {
		t.Errorf("%d advisory locks held during lb1's order, want 1", n)
	}
	wctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	_, err := lb2.orderGate(wctx, []string{"a.test"}, serving)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lb2's order while lb1 holds the lock: %v, want it to wait", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := lb2.orderGate(ctx, []string{"a.test"}, serving)
		done <- err
	}()
	if err := lb1.Put(ctx, "a.test", renewed); err != nil { // lb1's renewal stored: lock released
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, errRenewedElsewhere) {
		t.Errorf("lb2's order after lb1 renewed: %v, want errRenewedElsewhere", err)
	}
	if n := advisoryLocks(); n != 0 {
		t.Errorf("%d advisory locks held after the renewal, want 0", n)
	}

	release, err := lb2.orderGate(ctx, []string{"b.test"}, serving)
	if err != nil {
		t.Fatal(err)
	}
	release(false) // the order failed
	if n := advisoryLocks(); n != 0 {
		t.Errorf("%d advisory locks held after a failed order, want 0", n)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestPGCacheCallerGivingUpIsNotDatabaseDown: a caller whose own context ends
// mid-call (a client gone mid-handshake, a bounded wait for the issuance lock)
// says nothing about the database, so the next caller must not be refused
// with errDBSkipped.
func TestPGCacheCallerGivingUpIsNotDatabaseDown(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.Pool(t, nil)
	c, _, _ := newTestPGCache(t, pool, testSecret)
	data, _ := certPEM(t, 1, time.Hour, "a.test")
	if err := c.Put(ctx, "a.test", data); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	err := c.call(gone, func(cctx context.Context) error {
		cancel() // the caller leaves while its statement runs
		_, err := pool.Exec(cctx, `SELECT pg_sleep(0.2)`)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("call whose caller left: %v, want context.Canceled", err)
	}
	if _, err := c.dbGet(ctx, "a.test"); err != nil {
		t.Fatalf("next call after a caller gave up: %v, want the database tried", err)
	}
}
