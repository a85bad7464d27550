package balancer

import "time"

// The methods in this file let the health package drive the pool through interfaces of
// builtin types (health.Targets and health.Reporter) without either package importing the other.

// HealthTargets returns every backend's base URL by name (draining ones too: they are checked).
func (p *Pool) HealthTargets() map[string]string {
	list := p.backends()
	out := make(map[string]string, len(list))
	for _, b := range list {
		out[b.name] = b.url.String()
	}
	return out
}

// ReportCheck records the outcome of one active health check: ok that it passed, answered
// that an HTTP answer of any status came back within the check's timeout.
func (p *Pool) ReportCheck(name string, ok, answered bool, consecutiveOK int, at time.Time, errText, version string) {
	b, err := p.lookup(name)
	if err != nil {
		return
	}
	b.answered.Store(answered)
	b.mu.Lock()
	b.checksOK = consecutiveOK
	b.lastCheck = at
	b.lastError = errText
	if ok && version != "" {
		b.version = version
	}
	b.mu.Unlock()
}

// SetHealthy marks a backend up or down. Marking it down closes its idle connections.
func (p *Pool) SetHealthy(name string, up bool) {
	b, err := p.lookup(name)
	if err != nil {
		return
	}
	was := b.healthy.Swap(up)
	if was != up {
		b.touch()
	}
	if was && !up {
		b.closeIdle()
	}
}

// IsHealthy reports a backend's health (false for unknown names).
func (p *Pool) IsHealthy(name string) bool {
	b, err := p.lookup(name)
	return err == nil && b.Healthy()
}

// EjectUnlessLast marks a backend down after passive failures, unless no other active backend
// is healthy. It reports whether the backend was marked down.
func (p *Pool) EjectUnlessLast(name string) bool {
	p.mu.Lock() // serialises concurrent ejections so two cannot remove the last two
	defer p.mu.Unlock()
	b, err := p.lookup(name)
	if err != nil || !b.Healthy() {
		return false
	}
	others := false
	for _, x := range p.backends() {
		if x != b && x.Eligible() {
			others = true
			break
		}
	}
	if !others {
		return false
	}
	p.SetHealthy(name, false)
	return true
}

// CanForward reports whether a new request has somewhere to go, by the rule the proxy picks
// with (Proxy.pick): an active healthy backend; or, when no active backend is healthy and the
// proxy fails open to every active backend, one of those that accepts connections: an active
// backend whose last health check got an HTTP answer of any status (a 500, a "degraded" or a
// "draining" 503 all count). A backend that refuses connections or never answers within the
// check's timeout would only turn a fail-open request into a 502 or 504, and a draining one
// (by the admin API) takes no new request at all. failOpen says that only the second rule holds.
// lb's /readyz says "no_backends" when ok is false.
func (p *Pool) CanForward() (ok, failOpen bool) {
	answering := false
	for _, b := range p.backends() {
		if b.State() != StateActive {
			continue
		}
		if b.Healthy() {
			return true, false
		}
		if b.answered.Load() {
			answering = true
		}
	}
	return answering, answering
}
