// Package admin serves lb's admin API (JSON over HTTP, bearer token), its
// read-only status page, /metrics, /healthz and /readyz, and holds the Client
// that the lb CLI and rollout use.
package admin

import (
	"log/slog"
	"net/http"
	"time"

	"outrigger/internal/balancer"
)

// maxBodyBytes bounds a request body of the admin API.
const maxBodyBytes = 64 << 10

// Options are the admin handler's settings besides the pool and logger.
type Options struct {
	// Token returns the current bearer token (re-read on reload). An empty
	// token refuses every /api/ call.
	Token func() string
	// DrainTimeout returns how long DELETE waits for in-flight requests
	// before it removes a backend anyway.
	DrainTimeout func() time.Duration
	// Metrics serves GET /metrics (nil: 404).
	Metrics http.Handler
	// OnChange, if set, runs after every successful mutating call (lb saves
	// its state file there).
	OnChange func()
	// OnRemove, if set, runs with the backend's name after a DELETE removed
	// it, before OnChange (lb forgets the backend's passive failure count).
	OnRemove func(name string)
	// Version is shown on the status page and /healthz.
	Version string
	// Phase, if set, tells GET /readyz whether lb's public listeners serve yet and whether
	// lb is stopping; nil means serving (readiness then depends on the backends alone).
	Phase func() Phase
	// Reloader serves GET and POST /api/reload (nil: 404).
	Reloader Reloader
	// Started is when lb started (GET /api/status).
	Started time.Time
	// Certificates, if set, lists the names lb serves over HTTPS (GET /api/status).
	Certificates func() []Certificate
}

// server holds what the handlers share.
type server struct {
	pool   *balancer.Pool
	logger *slog.Logger
	opts   Options
	ready  readiness
}

// NewHandler returns the admin listener's handler: the API under /api/
// (every call needs the bearer token), /metrics, /healthz and the status page.
func NewHandler(pool *balancer.Pool, logger *slog.Logger, opts Options) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Token == nil {
		opts.Token = func() string { return "" }
	}
	if opts.DrainTimeout == nil {
		opts.DrainTimeout = func() time.Duration { return 30 * time.Second }
	}
	s := &server{pool: pool, logger: logger, opts: opts}
	return s.routes()
}

func (s *server) changed() {
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}
