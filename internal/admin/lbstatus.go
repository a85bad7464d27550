package admin

import (
	"net/http"
	"time"

	"outrigger/internal/balancer"
)

// LBStatus is GET /api/status: the state of lb as a whole, for the status
// page and scripts (an addition to DESIGN's API).
type LBStatus struct {
	// Version is lb's build version.
	Version string `json:"version"`
	// Now is lb's clock when it answered: ages on the page are computed
	// against it, not against the browser's clock.
	Now time.Time `json:"now"`
	// Started is when this lb process started.
	Started time.Time `json:"started"`
	// Ready is what GET /readyz says now: ready, stopping, no_backends or starting.
	Ready Readiness `json:"ready"`
	// FailOpen is true while no active backend is healthy and lb sends
	// requests to the active ones that accept connections.
	FailOpen bool `json:"fail_open"`
	// Certificates lists the names lb serves over HTTPS and their expiry;
	// empty (never null) when lb serves plain HTTP.
	Certificates []Certificate `json:"certificates"`
	// LastReload is the outcome of the last configuration load.
	LastReload *Reload `json:"last_reload,omitempty"`
}

// Certificate is one name lb serves over HTTPS.
type Certificate struct {
	Name string `json:"name"`
	// NotAfter is the certificate's expiry; null while lb has none for the
	// name (an ACME name not issued yet).
	NotAfter *time.Time `json:"not_after"`
}

// failingOpen reports whether no active backend is healthy while some are
// active: lb then forwards to the active ones (DESIGN's fail-open rule).
func failingOpen(snap []balancer.Status) bool {
	active := false
	for _, b := range snap {
		if b.State != balancer.StateActive {
			continue
		}
		if b.Healthy {
			return false
		}
		active = true
	}
	return active
}

func (s *server) handleLBStatus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := LBStatus{
			Version:      s.opts.Version,
			Now:          time.Now().UTC(),
			Started:      s.opts.Started.UTC(),
			Ready:        s.readiness(),
			FailOpen:     failingOpen(s.pool.Snapshot()),
			Certificates: []Certificate{},
		}
		if s.opts.Certificates != nil {
			out.Certificates = append(out.Certificates, s.opts.Certificates()...)
		}
		if s.opts.Reloader != nil {
			last := s.opts.Reloader.LastReload()
			out.LastReload = &last
		}
		writeJSON(w, http.StatusOK, out)
	})
}
