package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/acme/autocert"

	"outrigger/internal/lbconfig"
	"outrigger/internal/lbtest"
	"outrigger/internal/pgtest"
)

const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

func newTestPGCache(t *testing.T, pool *pgxpool.Pool, secret string) (*PGCache, autocert.DirCache, *lbtest.SyncBuffer) {
	t.Helper()
	logger, logs := newLogger()
	local := autocert.DirCache(t.TempDir())
	c, err := NewPGCache(pool, []byte(secret), local, logger)
	if err != nil {
		t.Fatalf("NewPGCache: %v", err)
	}
	return c, local, logs
}

func TestPGCache(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t, nil)
	c, local, _ := newTestPGCache(t, pool, testSecret)

	if _, err := c.Get(ctx, "a.test"); err != autocert.ErrCacheMiss {
		t.Fatalf("Get of a missing key: got %v, want exactly autocert.ErrCacheMiss", err)
	}
	v1 := []byte("-----BEGIN EC PRIVATE KEY-----\nsecret one\n")
	if err := c.Put(ctx, "a.test", v1); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, err := c.Get(ctx, "a.test"); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("Get: got %q, %v; want %q", got, err, v1)
	}
	if got, err := local.Get(ctx, "a.test"); err != nil || !bytes.Equal(got, v1) {
		t.Errorf("cache_dir after Put: got %q, %v; want %q", got, err, v1)
	}

	// Upsert.
	v2 := []byte("-----BEGIN EC PRIVATE KEY-----\nsecret two\n")
	if err := c.Put(ctx, "a.test", v2); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if got, err := c.Get(ctx, "a.test"); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("Get after upsert: got %q, %v; want %q", got, err, v2)
	}
	var rows int
	var raw []byte
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM autocert_cache WHERE key = 'a.test'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT data FROM autocert_cache WHERE key = 'a.test'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("got %d rows for a.test, want 1", rows)
	}
	if bytes.Contains(raw, []byte("secret two")) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Errorf("the row holds plaintext: %q", raw)
	}

	// A row moved to another key does not decrypt (the key is bound).
	if _, err := pool.Exec(ctx, `INSERT INTO autocert_cache (key, data) VALUES ('b.test', $1)`, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "b.test"); !errors.Is(err, errDecrypt) {
		t.Errorf("Get of a row copied from another key: got %v, want a decrypt error", err)
	}
	// Another secret cannot read it, and says so (no ErrCacheMiss: that would re-order).
	other, _, logs := newTestPGCache(t, pool, testSecret+"-other")
	if _, err := other.Get(ctx, "a.test"); err == nil || err == autocert.ErrCacheMiss {
		t.Errorf("Get with another key: got %v, want a decrypt error", err)
	}
	if !logs.HasLine("cannot decrypt", "a.test") {
		t.Errorf("no log line about the wrong key; logs:\n%s", logs)
	}

	// Delete, also of missing keys.
	if err := c.Delete(ctx, "a.test"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Get(ctx, "a.test"); err != autocert.ErrCacheMiss {
		t.Errorf("Get after Delete: got %v, want ErrCacheMiss", err)
	}
	if _, err := local.Get(ctx, "a.test"); err != autocert.ErrCacheMiss {
		t.Errorf("cache_dir after Delete: got %v, want ErrCacheMiss", err)
	}
	if err := c.Delete(ctx, "never.test"); err != nil {
		t.Errorf("Delete of a missing key: got %v, want nil", err)
	}

	// Challenge tokens live in the database only.
	if err := c.Put(ctx, "a.test+token", []byte("tok")); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Get(ctx, "a.test+token"); err != autocert.ErrCacheMiss {
		t.Errorf("token in cache_dir: got %v, want ErrCacheMiss", err)
	}
	if got, err := c.Get(ctx, "a.test+token"); err != nil || string(got) != "tok" {
		t.Errorf("token Get: got %q, %v", got, err)
	}

	// What cache_dir had before the database is copied into it.
	if err := local.Put(ctx, "seed.test", []byte("seeded")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "seed.test"); err != nil || string(got) != "seeded" {
		t.Fatalf("Get of a cache_dir-only key: got %q, %v", got, err)
	}
	c2, _, _ := newTestPGCache(t, pool, testSecret) // empty cache_dir
	if got, err := c2.Get(ctx, "seed.test"); err != nil || string(got) != "seeded" {
		t.Errorf("seeded key from another lb: got %q, %v", got, err)
	}

	if _, err := NewPGCache(pool, []byte("short"), nil, nil); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short secret: got %v, want a length error", err)
	}
}

func TestPGCacheDatabaseDown(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable&connect_timeout=2", deadPort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c, local, logs := newTestPGCache(t, pool, testSecret)
	if err := local.Put(ctx, "a.test", []byte("cached")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "a.test"); err != nil || string(got) != "cached" {
		t.Fatalf("Get with the database down: got %q, %v; want the cache_dir value", got, err)
	}
	if _, err := c.Get(ctx, "b.test"); err != autocert.ErrCacheMiss {
		t.Errorf("Get of a missing key with the database down: got %v, want ErrCacheMiss", err)
	}
	if err := c.Put(ctx, "c.test", []byte("new")); err != nil {
		t.Errorf("Put with the database down: got %v, want nil (kept in cache_dir)", err)
	}
	if got, _ := local.Get(ctx, "c.test"); string(got) != "new" {
		t.Errorf("cache_dir after Put: got %q, want new", got)
	}
	if n := strings.Count(logs.String(), "database unreachable"); n != 1 {
		t.Errorf("got %d 'unreachable' lines, want 1 (logged on the transition); logs:\n%s", n, logs)
	}

	called := false
	if err := c.issueLock(ctx, "a.test", func() error { called = true; return nil }); err != nil || !called {
		t.Errorf("issueLock for a name in cache_dir: err %v, called %v; want fn run", err, called)
	}
	called = false
	err = c.issueLock(ctx, "b.test", func() error { called = true; return nil })
	if !errors.Is(err, ErrNoIssuanceLock) || called {
		t.Errorf("issueLock for a new name: err %v, called %v; want ErrNoIssuanceLock and no fn", err, called)
	}
}

// writeKeyFile writes the cache secret to a 0600 file.
func writeKeyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cache-key")
	if err := os.WriteFile(p, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestACMESharedCacheOneOrder: two lbs share the PostgreSQL cache and see
// the first handshake for a new name at the same instant; the CA validates
// on lb1's port. Exactly one order is placed and both serve the same leaf.
// Twenty names in a row, each new to both lbs.
func TestACMESharedCacheOneOrder(t *testing.T) {
	const rounds = 20
	dsn := pgtest.DSN(t)
	dnsAddr := lbtest.StartDNS(t, nil)
	ln1, ln2 := listen(t), listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, ln1.Addr().String()), 0)
	var names []string
	for i := range rounds {
		names = append(names, fmt.Sprintf("n%02d.lb.test", i))
	}
	keyFile := writeKeyFile(t)
	cfg := func() lbconfig.TLS {
		c := acmeConfig(p, t.TempDir(), names...)
		c.ACME.CacheDatabaseURL = dsn
		c.ACME.CacheKeyFile = keyFile
		return c
	}
	lb1 := startACMELB(t, cfg(), ln1, nil)
	lb2 := startACMELB(t, cfg(), ln2, nil)

	for i, name := range names {
		before := p.Orders.Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		leaves := make([][]byte, 2)
		errs := make([]error, 2)
		for j, addr := range []string{lb1.https, lb2.https} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				leaf, err := handshake(addr, name)
				errs[j] = err
				if err == nil {
					leaves[j] = leaf.Raw
				}
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d (%s): handshakes: lb1 %v, lb2 %v\nlb1 logs:\n%s\nlb2 logs:\n%s", i, name, errs[0], errs[1], lb1.logs, lb2.logs)
		}
		if got := p.Orders.Load() - before; got != 1 {
			t.Errorf("round %d (%s): got %d orders, want 1", i, name, got)
		}
		if !bytes.Equal(leaves[0], leaves[1]) {
			t.Errorf("round %d (%s): the lbs serve different leaves", i, name)
		}
	}
}

// TestACMEBootsWithDatabaseDown: an lb issues through the PostgreSQL
// cache; the database and the CA go down; an lb restarted on the same
// cache_dir serves the certificate, and a name never issued fails cleanly.
// When the database is back, the cache uses it again.
func TestACMEBootsWithDatabaseDown(t *testing.T) {
	ctx := context.Background()
	cl, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{})
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	dnsAddr := lbtest.StartDNS(t, nil)
	httpsLn := listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, httpsLn.Addr().String()), 0)
	cfg := acmeConfig(p, t.TempDir(), testName, "new.lb.test")
	cfg.ACME.CacheDatabaseURL = cl.DSN("postgres")
	cfg.ACME.CacheKeyFile = writeKeyFile(t)
	lb1 := startACMELB(t, cfg, httpsLn, nil)
	resp, _, err := get(t, lb1.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("issuance through the PostgreSQL cache: %v\nlogs:\n%s", err, lb1.logs)
	}
	leaf := checkChain(t, resp, p, testName)

	p.Close()
	if err := cl.Stop(ctx); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	lb2 := startACMELB(t, cfg, listen(t), nil)
	resp, _, err = get(t, lb2.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("restarted lb with PostgreSQL and the CA down: %v\nlogs:\n%s", err, lb2.logs)
	}
	if got := resp.TLS.PeerCertificates[0]; !got.Equal(leaf) {
		t.Errorf("restarted lb served serial %s, want %s", got.SerialNumber, leaf.SerialNumber)
	}
	if !lb2.logs.HasLine("database unreachable") {
		t.Errorf("no log line about the database; logs:\n%s", lb2.logs)
	}
	start := time.Now()
	if _, err := handshake(lb2.https, "new.lb.test"); err == nil {
		t.Fatal("handshake for a never-issued name succeeded with the database down")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("refusal took %s", d)
	}
	if !lb2.logs.HasLine(`"msg":"certificate failed"`, `"name":"new.lb.test"`, "cannot coordinate issuance") {
		t.Errorf("no clear failure line for new.lb.test; logs:\n%s", lb2.logs)
	}

	if err := cl.Start(ctx); err != nil {
		t.Fatalf("restart PostgreSQL: %v", err)
	}
	lbtest.WaitFor(t, 20*time.Second, "the cache to read from PostgreSQL again", func() bool {
		data, err := lb2.src.acme.m.Cache.Get(ctx, testName)
		return err == nil && len(data) > 0 && lb2.logs.HasLine("database reachable again")
	})
}
