package admin

import (
	"net/http"
	"sync"

	"outrigger/internal/balancer"
)

// Phase is where lb is in its life, as GET /readyz needs to know it.
type Phase int32

const (
	// PhaseStarting: the public listeners do not serve yet.
	PhaseStarting Phase = iota
	// PhaseServing: the public listeners serve.
	PhaseServing
	// PhaseStopping: lb got SIGTERM; it may still serve (shutdown_delay) but wants no new clients.
	PhaseStopping
)

// Readiness is the status GET /readyz names.
type Readiness string

// The statuses of GET /readyz: 200 for Ready, 503 for every other.
const (
	// Ready: the public listeners serve and lb can forward, to a healthy active backend or,
	// failing open, to an active backend that answers its health checks.
	Ready Readiness = "ready"
	// Stopping: lb got SIGTERM (from that instant, through shutdown_delay and the drain).
	Stopping Readiness = "stopping"
	// NoBackends: no active backend accepts connections (none at all, every one drained,
	// or every one refusing or not answering its health check within its timeout).
	NoBackends Readiness = "no_backends"
	// Starting: the admin listener answers but the public listeners do not serve yet.
	Starting Readiness = "starting"
)

// readyBody is the JSON of GET /readyz.
type readyBody struct {
	Status Readiness `json:"status"`
}

// readiness remembers the last status /readyz gave, to log changes once rather than at
// every poll (keepalived asks every second or faster).
type readiness struct {
	mu   sync.Mutex
	last Readiness
}

// readiness computes what GET /readyz says now.
func (s *server) readiness() Readiness {
	phase := PhaseServing
	if s.opts.Phase != nil {
		phase = s.opts.Phase()
	}
	return ReadinessOf(s.pool, phase)
}

// ReadinessOf is what GET /readyz says for a pool in a phase of lb's life (lb's lb_ready
// metric follows it too).
func ReadinessOf(pool *balancer.Pool, phase Phase) Readiness {
	switch phase {
	case PhaseStarting:
		return Starting
	case PhaseStopping:
		return Stopping
	}
	if ok, _ := pool.CanForward(); !ok {
		return NoBackends
	}
	return Ready
}

// handleReadyz serves GET /readyz (no token): 200 {"status":"ready"}, else 503 naming why.
// A change from the status of the previous call is logged once.
func (s *server) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := s.readiness()
		s.ready.mu.Lock()
		prev := s.ready.last
		s.ready.last = status
		s.ready.mu.Unlock()
		if prev != status {
			from := string(prev)
			if from == "" {
				from = "unknown"
			}
			s.logger.Info("readiness changed", "from", from, "to", string(status))
		}
		code := http.StatusOK
		if status != Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, readyBody{Status: status})
	})
}
