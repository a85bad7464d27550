// Package app is the HTTP server of Outrigger's app: the JSON API, the HTML
// pages, /healthz and the middleware around them (request log, X-Instance,
// cross-origin protection). Everything it keeps lives in PostgreSQL, through
// the store and pgsession packages, so any number of copies can serve the
// same users.
package app

import (
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/pgsession"
	"outrigger/internal/app/store"
	"outrigger/internal/clientip"
	"outrigger/internal/logging"
)

// Config holds the settings of the HTTP server.
type Config struct {
	// Version and Instance are reported by /healthz, /api/me, the pages and X-Instance.
	Version  string
	Instance string
	// MaxUploadBytes bounds the request body of an upload (DESIGN: 32 MiB).
	MaxUploadBytes int64
	// MaxTransfers is how many uploads and downloads may run at once (half of
	// DB_MAX_CONNS); 0 means 1.
	MaxTransfers int
	// TransferWait is how long a transfer waits for a free slot before 503; 0 means 2s.
	TransferWait time.Duration
	// BcryptCost is the cost of new password hashes; 0 means bcrypt.DefaultCost.
	BcryptCost int
	// HashConcurrency is how many password hashes run at once; 0 means GOMAXPROCS.
	HashConcurrency int
	// DBRetryTimeout is how long one request may wait on the database in all
	// (DB_RETRY_TIMEOUT; see pgretry.Budget); 0 means pgretry.DefaultBudget.
	DBRetryTimeout time.Duration

	// beforeCopy, if set, runs in a download between reading the file's row
	// and reading its first chunk (tests break the database there).
	beforeCopy func()
}

func (c Config) withDefaults() Config {
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 32 << 20
	}
	if c.MaxTransfers <= 0 {
		c.MaxTransfers = 1
	}
	if c.TransferWait <= 0 {
		c.TransferWait = 2 * time.Second
	}
	if c.HashConcurrency <= 0 {
		c.HashConcurrency = runtime.GOMAXPROCS(0)
	}
	if c.DBRetryTimeout <= 0 {
		c.DBRetryTimeout = pgretry.DefaultBudget
	}
	return c
}

// NewServer returns the app's whole HTTP handler. ips decides which
// X-Forwarded-For to believe for the request log and login limits; ready says whether the schema is migrated and whether
// the server is draining.
func NewServer(cfg Config, logger *slog.Logger, ips *clientip.Resolver,
	st *store.Store, sess *pgsession.Store, ready *Readiness) http.Handler {
	cfg = cfg.withDefaults()
	acc := newAccounts(logger, st, cfg.BcryptCost, cfg.HashConcurrency)
	mux := http.NewServeMux()
	addRoutes(mux, cfg, logger, ips, st, sess, ready, acc)

	return middleware(cfg, logger, ips, ready, jsonMuxErrors(mux))
}

// middleware wraps the routes in what every request goes through, outermost
// first: health-check note, request log, X-Instance (and Connection: close
// while draining), panic recovery, cross-origin protection, the request's
// database budget.
func middleware(cfg Config, logger *slog.Logger, ips *clientip.Resolver, ready *Readiness, h http.Handler) http.Handler {
	h = withDBBudget(cfg.DBRetryTimeout, h)
	h = crossOriginProtection(h)
	h = recoverPanics(logger, h)
	h = withInstance(cfg.Instance, ready, h)
	h = logging.Middleware(logger, ips.ClientIP, skipUnchangedHealth())(h)
	h = withHealthNote(h)
	return h
}
