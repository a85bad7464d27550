package certs

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/acme/autocert"

	"outrigger/internal/lbconfig"
)

// MinCacheKeyLen is the shortest secret accepted in tls.acme.cache_key_file.
const MinCacheKeyLen = 32

const (
	// pgCallTimeout bounds every call to the database (a handshake for a name not in
	// memory waits at most this long on a database that vanished); keep connect_timeout
	// in cache_database_url short (2s), since a dead host listed first costs that much.
	pgCallTimeout = 3 * time.Second
	// pgDownFor: after a failed call the database is left alone this long (the local
	// cache answers at once), then tried again.
	pgDownFor     = 5 * time.Second
	pgLockTimeout = 5 * time.Minute // as long as autocert gives an issuance
	pgPoolConns   = 8
	sealVersion   = 1
)

// PGCache is an autocert.Cache in PostgreSQL (table autocert_cache), shared
// by several lbs. Every value is encrypted with AES-256-GCM (the key is
// derived from a secret with HKDF-SHA256; the cache key is bound as
// additional data). Every Put and Delete also goes to a local cache (the
// cache_dir; challenge tokens excepted, they live in the database only),
// and Get falls back to it while PostgreSQL is unreachable, so an lb
// starts and serves what it had with the database down.
//
// Through a failover: every call has a deadline (pgCallTimeout), and after a
// failure the database is left alone for pgDownFor, the local cache
// answering at once, so that no handshake waits on a dead database for
// long; certificates in memory never touch it. Used through Source
// (tls.acme.cache_database_url), every ACME order (first issuance and
// renewal) is placed under a PostgreSQL advisory lock on the name (see
// issuelock.go), so that lbs never order twice, and never without the lock.
type PGCache struct {
	pool  *pgxpool.Pool
	aead  cipher.AEAD
	local autocert.Cache // nil: none
	log   *slog.Logger

	callTimeout time.Duration // pgCallTimeout; tests shorten them
	downFor     time.Duration // pgDownFor

	schemaMu  sync.Mutex
	schemaOK  bool
	dbDown    atomic.Bool
	downUntil atomic.Int64 // unix nanoseconds: skip the database until then

	// lockSem bounds the connections held by issuance locks, so that the
	// cache calls made under a lock always find a free connection.
	lockSem chan struct{}
	nameMu  sync.Mutex
	names   map[string]chan struct{} // per-name lock within the process
	held    map[string]int           // names whose issuance lock this process holds
	orders  map[string]*orderLock    // locks taken for an order outside issueLock
}

// NewPGCache returns a cache on pool, encrypting with a key derived from
// secret (at least MinCacheKeyLen bytes), writing through to local (may be
// nil). It does not touch the database: the table is created on first use.
func NewPGCache(pool *pgxpool.Pool, secret []byte, local autocert.Cache, logger *slog.Logger) (*PGCache, error) {
	if len(secret) < MinCacheKeyLen {
		return nil, fmt.Errorf("certs: cache key is %d bytes, want at least %d (e.g. openssl rand -hex 32)", len(secret), MinCacheKeyLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "outrigger autocert cache v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive cache key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cache cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cache cipher: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := max(1, int(pool.Config().MaxConns)/2)
	return &PGCache{
		pool: pool, aead: aead, local: local, log: logger,
		callTimeout: pgCallTimeout, downFor: pgDownFor,
		lockSem: make(chan struct{}, n),
		names:   map[string]chan struct{}{},
		held:    map[string]int{},
		orders:  map[string]*orderLock{},
	}, nil
}

// newPGCacheFromConfig opens the pool of cfg.CacheDatabaseURL (lazily: no
// connection is made here) and reads the key file.
func newPGCacheFromConfig(ctx context.Context, cfg lbconfig.ACME, local autocert.Cache, logger *slog.Logger) (*PGCache, error) {
	if cfg.CacheKeyFile == "" {
		return nil, errors.New("certs: tls.acme.cache_key_file is required with cache_database_url")
	}
	secret, err := lbconfig.ReadToken(cfg.CacheKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.acme.cache_key_file: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.CacheDatabaseURL)
	if err != nil {
		return nil, errors.New("certs: tls.acme.cache_database_url does not parse") // the URL may hold a password
	}
	if !strings.Contains(cfg.CacheDatabaseURL, "pool_max_conns") {
		pcfg.MaxConns = pgPoolConns
	}
	// An issuance lock holds a connection while the cache needs another.
	pcfg.MaxConns = max(pcfg.MaxConns, 2)
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		pcfg.ConnConfig.ConnectTimeout = 2 * time.Second // per host; below pgCallTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("certificate cache database pool: %w", err)
	}
	c, err := NewPGCache(pool, []byte(secret), local, logger)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the order locks still held, then closes the pool.
func (c *PGCache) Close() {
	c.releaseOrders()
	c.pool.Close()
}

const schemaSQL = `CREATE TABLE IF NOT EXISTS autocert_cache (
	key        text PRIMARY KEY,
	data       bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// ensureSchema creates the table once (under an advisory lock, as two lbs
// may start together).
func (c *PGCache) ensureSchema(ctx context.Context) error {
	c.schemaMu.Lock()
	defer c.schemaMu.Unlock()
	if c.schemaOK {
		return nil
	}
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('autocert:schema', 0))`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schemaSQL)
		return err
	})
	if err != nil {
		return fmt.Errorf("create autocert_cache: %w", err)
	}
	c.schemaOK = true
	return nil
}

// isTokenKey reports whether a cache key holds challenge material, which is
// short-lived and shared only through the database.
func isTokenKey(key string) bool {
	return strings.HasSuffix(key, "+token") || strings.HasSuffix(key, "+http-01")
}

// errDBSkipped is what a call gets while the database is left alone after a failure.
var errDBSkipped = errors.New("certs: certificate cache database not tried: it failed a moment ago")

// Get returns the value of key: from PostgreSQL (and written through to
// the local cache), or from the local cache while the database is
// unreachable. A missing key is exactly autocert.ErrCacheMiss.
func (c *PGCache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.dbGet(ctx, key)
	switch {
	case err == nil:
		c.syncLocal(ctx, key, data)
		return data, nil
	case errors.Is(err, pgx.ErrNoRows):
		// Seed the database from what this lb had before (not tokens).
		if c.local == nil || isTokenKey(key) {
			return nil, autocert.ErrCacheMiss
		}
		data, lerr := c.local.Get(ctx, key)
		if lerr != nil {
			return nil, autocert.ErrCacheMiss
		}
		if perr := c.dbPut(ctx, key, data); perr != nil {
			c.log.Warn("certificate cache: copy from cache_dir to the database failed", "key", key, "err", perr)
		}
		return data, nil
	case errors.Is(err, errDecrypt):
		c.log.Error("certificate cache: cannot decrypt a row (wrong tls.acme.cache_key_file?)", "key", key)
		return nil, err
	default:
		if c.local == nil || isTokenKey(key) {
			return nil, err
		}
		return c.local.Get(ctx, key) // ErrCacheMiss as is
	}
}

// syncLocal brings the local cache in line with the database's value of key,
// except when the local one holds a certificate that expires later (renewed
// while the database was away): that one goes to the database instead.
func (c *PGCache) syncLocal(ctx context.Context, key string, data []byte) {
	if c.local == nil || isTokenKey(key) {
		return
	}
	old, lerr := c.local.Get(ctx, key)
	if lerr == nil && bytes.Equal(old, data) {
		return
	}
	if lerr == nil && laterCert(old, data) {
		if err := c.dbPut(ctx, key, old); err != nil {
			c.log.Warn("certificate cache: copy of a newer certificate from cache_dir to the database failed", "key", key, "err", err)
		}
		return
	}
	if err := c.local.Put(ctx, key, data); err != nil {
		c.log.Warn("certificate cache: write to cache_dir failed", "key", key, "err", err)
	}
}

// laterCert reports whether a and b both hold certificates and a's expires later.
func laterCert(a, b []byte) bool {
	la, errA := leafFromPEM(a)
	lb, errB := leafFromPEM(b)
	return errA == nil && errB == nil && la.NotAfter.After(lb.NotAfter)
}

// Put stores data under key in the local cache and in PostgreSQL. When
// only the database write fails, the error is logged and nil returned: the
// value is kept in cache_dir (autocert would otherwise drop a renewed
// certificate), and goes to the database once it is back and Get finds it
// older there. A certificate's Put ends the order lock taken for it.
func (c *PGCache) Put(ctx context.Context, key string, data []byte) error {
	defer c.releaseOrder(strings.TrimSuffix(key, "+rsa")) // tokens and the account hold none
	if c.local != nil && !isTokenKey(key) {
		if err := c.local.Put(ctx, key, data); err != nil {
			return fmt.Errorf("certificate cache: write %s to cache_dir: %w", key, err)
		}
	}
	err := c.dbPut(ctx, key, data)
	if err == nil {
		return nil
	}
	if c.local == nil || isTokenKey(key) {
		return err
	}
	c.log.Error("certificate cache: database write failed; kept in cache_dir only", "key", key, "err", err)
	return nil
}

// Delete removes key from both caches; a missing key is not an error.
func (c *PGCache) Delete(ctx context.Context, key string) error {
	var lerr error
	if c.local != nil && !isTokenKey(key) {
		lerr = c.local.Delete(ctx, key)
	}
	err := c.call(ctx, func(ctx context.Context) error {
		_, err := c.pool.Exec(ctx, `DELETE FROM autocert_cache WHERE key = $1`, key)
		return err
	})
	if err != nil {
		return errors.Join(lerr, fmt.Errorf("delete %s from autocert_cache: %w", key, err))
	}
	return lerr
}

// call runs f with a deadline of callTimeout, after making sure the table
// exists, unless the database failed less than downFor ago (errDBSkipped). A
// failure (other than a missing row or a value that does not decrypt) marks
// the database down, unless the caller's own context ended first: a client
// that went away mid-handshake, or a wait the caller bounded, says nothing
// about the database.
func (c *PGCache) call(ctx context.Context, f func(context.Context) error) error {
	if time.Now().UnixNano() < c.downUntil.Load() {
		return errDBSkipped
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	err := c.ensureSchema(ctx)
	if err == nil {
		err = f(ctx)
	}
	switch {
	case err == nil, errors.Is(err, pgx.ErrNoRows), errors.Is(err, errDecrypt):
		c.setDown(false, nil)
	case caller.Err() != nil:
		// The caller gave up: neither up nor down.
	default:
		c.setDown(true, err)
	}
	return err
}

func (c *PGCache) dbGet(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := c.call(ctx, func(ctx context.Context) error {
		var sealed []byte
		err := c.pool.QueryRow(ctx, `SELECT data FROM autocert_cache WHERE key = $1`, key).Scan(&sealed)
		if errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err != nil {
			return fmt.Errorf("read %s from autocert_cache: %w", key, err)
		}
		data, err = c.open(key, sealed)
		return err
	})
	return data, err
}

func (c *PGCache) dbPut(ctx context.Context, key string, data []byte) error {
	sealed, err := c.seal(key, data)
	if err != nil {
		return err
	}
	return c.call(ctx, func(ctx context.Context) error {
		_, err := c.pool.Exec(ctx, `INSERT INTO autocert_cache (key, data, updated_at) VALUES ($1, $2, now())
			ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`, key, sealed)
		if err != nil {
			return fmt.Errorf("write %s to autocert_cache: %w", key, err)
		}
		return nil
	})
}

var errDecrypt = errors.New("certs: autocert_cache row does not decrypt with this key")

// seal encrypts data for key: version byte, nonce, ciphertext+tag.
func (c *PGCache) seal(key string, data []byte) ([]byte, error) {
	out := make([]byte, 1+c.aead.NonceSize(), 1+c.aead.NonceSize()+len(data)+c.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("cache nonce: %w", err)
	}
	return c.aead.Seal(out, out[1:], data, []byte(key)), nil
}

func (c *PGCache) open(key string, sealed []byte) ([]byte, error) {
	ns := c.aead.NonceSize()
	if len(sealed) < 1+ns || sealed[0] != sealVersion {
		return nil, errDecrypt
	}
	data, err := c.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(key))
	if err != nil {
		return nil, errDecrypt
	}
	return data, nil
}

// setDown records whether the database answers (while down, calls skip it
// for downFor after each failure), and logs when it becomes unreachable and
// when it is back.
func (c *PGCache) setDown(down bool, err error) {
	if down {
		c.downUntil.Store(time.Now().Add(c.downFor).UnixNano())
	}
	if c.dbDown.Swap(down) == down {
		return
	}
	if down {
		c.log.Error("certificate cache database unreachable; serving from cache_dir, new names fail", "err", err)
	} else {
		c.log.Info("certificate cache database reachable again")
	}
}
