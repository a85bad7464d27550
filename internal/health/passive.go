package health

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// Passive counts consecutive failures of real traffic per backend (connection refused or
// reset, timeouts) and, at Fall, marks the backend down unless it is the last healthy active
// one. Only the active Checker brings a backend back. It starts no goroutines.
type Passive struct {
	rep    Reporter
	logger *slog.Logger
	fall   atomic.Int64
	counts sync.Map // backend name -> *atomic.Int64 consecutive failures
}

// NewPassive returns a Passive that ejects after fall consecutive failures (0 means 2).
func NewPassive(fall int, rep Reporter, logger *slog.Logger) *Passive {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Passive{rep: rep, logger: logger}
	p.SetFall(fall)
	return p
}

// SetFall changes the failure threshold (reload).
func (p *Passive) SetFall(fall int) {
	if fall <= 0 {
		fall = DefaultFall
	}
	p.fall.Store(int64(fall))
}

// Observe records one outcome of real traffic to backend (balancer.Observer).
func (p *Passive) Observe(backend string, failed bool) {
	v, ok := p.counts.Load(backend)
	if !failed {
		if ok {
			if c := v.(*atomic.Int64); c.Load() != 0 {
				c.Store(0)
			}
		}
		return
	}
	if !ok {
		v, _ = p.counts.LoadOrStore(backend, new(atomic.Int64))
	}
	c := v.(*atomic.Int64)
	n := c.Add(1)
	if n < p.fall.Load() {
		return
	}
	c.Store(0)
	if !p.rep.IsHealthy(backend) {
		return
	}
	if p.rep.EjectUnlessLast(backend) {
		p.logger.Warn("backend marked down after failures on real traffic", "backend", backend, "failures", n)
	} else {
		p.logger.Debug("backend kept up: it is the last healthy one", "backend", backend, "failures", n)
	}
}

// Forget drops the failure count of a backend that left the pool.
func (p *Passive) Forget(backend string) { p.counts.Delete(backend) }

// Failures returns the backend's current count of consecutive failures.
func (p *Passive) Failures(backend string) int {
	if v, ok := p.counts.Load(backend); ok {
		return int(v.(*atomic.Int64).Load())
	}
	return 0
}
