package app

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// pingTimeout is how long /healthz waits for the database before it answers degraded.
const pingTimeout = 500 * time.Millisecond

// Readiness holds what /healthz reports besides the database ping: whether the
// schema is migrated yet and whether the server is shutting down. The zero
// value is not migrated and not draining.
type Readiness struct {
	migrated atomic.Bool
	draining atomic.Bool
}

// SetMigrated records that migrations succeeded; until then /healthz answers degraded.
func (rd *Readiness) SetMigrated() { rd.migrated.Store(true) }

// Migrated reports whether SetMigrated was called.
func (rd *Readiness) Migrated() bool { return rd.migrated.Load() }

// SetDraining makes /healthz answer draining and every response carry
// Connection: close, from this instant on.
func (rd *Readiness) SetDraining() { rd.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (rd *Readiness) Draining() bool { return rd.draining.Load() }

// healthBody is the JSON /healthz answers.
type healthBody struct {
	Status   string `json:"status"`
	Version  string `json:"version"`
	Instance string `json:"instance"`
}

// handleHealthz answers ok, draining or degraded (DESIGN's /healthz).
// Only checks whose result changed are logged (see withHealthNote).
func handleHealthz(cfg Config, ready *Readiness, ping func(context.Context) error) http.Handler {
	var last atomic.Value // string: the previous result
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := healthBody{Status: "ok", Version: cfg.Version, Instance: cfg.Instance}
		status := http.StatusOK
		switch {
		case ready.Draining():
			body.Status, status = "draining", http.StatusServiceUnavailable
		case !ready.Migrated():
			body.Status, status = "degraded", http.StatusServiceUnavailable
		default:
			ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
			err := ping(ctx)
			cancel()
			if err != nil {
				body.Status, status = "degraded", http.StatusServiceUnavailable
			}
		}
		noteHealth(r, &last, body.Status)
		encode(w, status, body)
	})
}
