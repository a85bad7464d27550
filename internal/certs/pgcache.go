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
	pgQueryTimeout = 10 * time.Second
	pgLockTimeout  = 5 * time.Minute // as long as autocert gives an issuance
	pgPoolConns    = 8
	sealVersion    = 1
)

// PGCache is an autocert.Cache in PostgreSQL (table autocert_cache), shared
// by several lbs. Every value is encrypted with AES-256-GCM (the key is
// derived from a secret with HKDF-SHA256; the cache key is bound as
// additional data). Every Put and Delete also goes to a local cache (the
// cache_dir; challenge tokens excepted, they live in the database only),
// and Get falls back to it while PostgreSQL is unreachable, so an lb
// starts and serves what it had with the database down. Used through
// Source (tls.acme.cache_database_url), the first issuance of a name also
// runs under a PostgreSQL advisory lock, so that lbs do not order twice.
type PGCache struct {
	pool  *pgxpool.Pool
	aead  cipher.AEAD
	local autocert.Cache // nil: none
	log   *slog.Logger

	schemaMu sync.Mutex
	schemaOK bool
	dbDown   atomic.Bool

	// lockSem bounds the connections held by issuance locks, so that the
	// cache calls made under a lock always find a free connection.
	lockSem chan struct{}
	nameMu  sync.Mutex
	names   map[string]chan struct{} // per-name lock within the process
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
		lockSem: make(chan struct{}, n),
		names:   map[string]chan struct{}{},
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
		pcfg.ConnConfig.ConnectTimeout = 5 * time.Second
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

// Close closes the pool.
func (c *PGCache) Close() { c.pool.Close() }

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

// Get returns the value of key: from PostgreSQL (and written through to
// the local cache), or from the local cache while the database is
// unreachable. A missing key is exactly autocert.ErrCacheMiss.
func (c *PGCache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.dbGet(ctx, key)
	switch {
	case err == nil:
		c.setDown(false, nil)
		if c.local != nil && !isTokenKey(key) {
			if old, lerr := c.local.Get(ctx, key); lerr != nil || !bytes.Equal(old, data) {
				if perr := c.local.Put(ctx, key, data); perr != nil {
					c.log.Warn("certificate cache: write to cache_dir failed", "key", key, "err", perr)
				}
			}
		}
		return data, nil
	case errors.Is(err, pgx.ErrNoRows):
		c.setDown(false, nil)
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
		c.setDown(true, err)
		if c.local == nil {
			return nil, err
		}
		return c.local.Get(ctx, key) // ErrCacheMiss as is
	}
}

// Put stores data under key in the local cache and in PostgreSQL. When
// only the database write fails, the error is logged and nil returned: the
// value is kept in cache_dir (autocert would otherwise drop a renewed
// certificate).
func (c *PGCache) Put(ctx context.Context, key string, data []byte) error {
	if c.local != nil && !isTokenKey(key) {
		if err := c.local.Put(ctx, key, data); err != nil {
			return fmt.Errorf("certificate cache: write %s to cache_dir: %w", key, err)
		}
	}
	err := c.dbPut(ctx, key, data)
	if err == nil {
		c.setDown(false, nil)
		return nil
	}
	c.setDown(true, err)
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
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	if err := c.ensureSchema(ctx); err != nil {
		return errors.Join(lerr, err)
	}
	if _, err := c.pool.Exec(ctx, `DELETE FROM autocert_cache WHERE key = $1`, key); err != nil {
		return errors.Join(lerr, fmt.Errorf("delete %s from autocert_cache: %w", key, err))
	}
	return lerr
}

func (c *PGCache) dbGet(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	if err := c.ensureSchema(ctx); err != nil {
		return nil, err
	}
	var sealed []byte
	err := c.pool.QueryRow(ctx, `SELECT data FROM autocert_cache WHERE key = $1`, key).Scan(&sealed)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("read %s from autocert_cache: %w", key, err)
	}
	return c.open(key, sealed)
}

func (c *PGCache) dbPut(ctx context.Context, key string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	if err := c.ensureSchema(ctx); err != nil {
		return err
	}
	sealed, err := c.seal(key, data)
	if err != nil {
		return err
	}
	_, err = c.pool.Exec(ctx, `INSERT INTO autocert_cache (key, data, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`, key, sealed)
	if err != nil {
		return fmt.Errorf("write %s to autocert_cache: %w", key, err)
	}
	return nil
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

// setDown logs when the database becomes unreachable and when it is back.
func (c *PGCache) setDown(down bool, err error) {
	if c.dbDown.Swap(down) == down {
		return
	}
	if down {
		c.log.Error("certificate cache database unreachable; serving from cache_dir, new names fail", "err", err)
	} else {
		c.log.Info("certificate cache database reachable again")
	}
}

// ErrNoIssuanceLock is returned for a name that is not cached locally while
// the database (and so the issuance lock) is unreachable.
var ErrNoIssuanceLock = errors.New("certs: certificate cache database unreachable: cannot coordinate issuance")

// issueLock runs fn (autocert's GetCertificate for name) under a
// transaction-scoped advisory lock on name, so that of several lbs seeing
// a new name at once only one orders; the others then find its certificate
// in the cache. Within the process, calls for one name are serialised
// first. With the database down, fn runs without the lock only if the
// certificate is in the local cache.
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

	tx, err := c.pool.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "autocert:"+name)
		if err != nil {
			_ = tx.Rollback(context.Background())
		}
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("wait for issuance lock on %s: %w", name, ctx.Err())
	}
	if err != nil {
		c.setDown(true, err)
		if c.local != nil && c.hasLocal(ctx, name) {
			return fn()
		}
		return fmt.Errorf("%w (%s): %v", ErrNoIssuanceLock, name, err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }() // releases the lock
	return fn()
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
