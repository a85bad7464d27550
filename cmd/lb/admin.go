package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"outrigger/internal/admin"
	"outrigger/internal/clientip"
	"outrigger/internal/logging"
)

// adminHandler is the admin listener's handler.
func (s *lbServer) adminHandler() http.Handler {
	h := admin.NewHandler(s.pool, s.logger, admin.Options{
		Token:        func() string { return *s.token.Load() },
		DrainTimeout: func() time.Duration { return s.cfg.Load().DrainTimeout },
		Metrics:      promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}),
		OnRemove:     s.passive.Forget,
		OnChange: func() {
			s.checker.Sync()
			s.saveState()
		},
		Version:      version,
		Phase:        func() admin.Phase { return admin.Phase(s.phase.Load()) },
		Reloader:     s,
		Started:      s.started,
		Certificates: s.certificates,
	})
	// Polls of the API, metrics and health are not worth a line each; changes are. /readyz
	// is polled by keepalived every second, 503 or not: its handler logs each change instead.
	skip := logging.SkipIf(func(r *http.Request, status int) bool {
		return r.Method == http.MethodGet && (status < 400 || r.URL.Path == "/readyz")
	})
	return logging.Middleware(s.logger, clientip.PeerAddr, skip)(h)
}

// readyMetric is lb_ready: 1 while GET /readyz answers 200 "ready", else 0, so that
// Prometheus can alert on an lb that keepalived's check finds not ready.
func (s *lbServer) readyMetric() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lb_ready",
		Help: "1 while GET /readyz answers 200 ready; 0 while it answers 503 (stopping, no_backends, starting).",
	}, func() float64 {
		if admin.ReadinessOf(s.pool, admin.Phase(s.phase.Load())) == admin.Ready {
			return 1
		}
		return 0
	})
}

// certificates lists the names the HTTPS listener serves, for GET /api/status.
func (s *lbServer) certificates() []admin.Certificate {
	if s.certs == nil {
		return nil
	}
	var out []admin.Certificate
	for _, c := range s.certs.Certificates() {
		ac := admin.Certificate{Name: c.Name}
		if !c.NotAfter.IsZero() {
			t := c.NotAfter.UTC()
			ac.NotAfter = &t
		}
		out = append(out, ac)
	}
	return out
}
