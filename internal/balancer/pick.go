package balancer

// tries is what one client request tracks across its attempts.
type tries struct {
	skip    []*Backend // tried or full
	skipBuf [4]*Backend
	held    []*Backend // picked backends whose refs this request holds
	heldBuf [4]*Backend
	candBuf [8]*Backend
}

// reset prepares t for a new request.
func (t *tries) reset() {
	t.skip, t.held = t.skipBuf[:0], t.heldBuf[:0]
}

// pick chooses a backend for the next attempt and counts it in flight. After choosing, it
// re-checks the backend's state, so a drain (or a down mark) is exact from the instant it
// returns. full reports that some backend was skipped for max_in_flight_per_backend.
func (p *Proxy) pick(t *tries, cfg *ProxyConfig, pol Policy) (b *Backend, full bool) {
	list := p.pool.backends()
	for range 2*len(list) + 2 {
		cands := t.candBuf[:0]
		healthy := false
		for _, x := range list {
			if x.Eligible() {
				healthy = true
				if !t.skipped(x) {
					cands = append(cands, x)
				}
			}
		}
		open := !healthy
		if open {
			for _, x := range list {
				if x.State() == StateActive && !t.skipped(x) {
					cands = append(cands, x)
				}
			}
		}
		p.noteFailOpen(open, len(cands) > 0)
		if len(cands) == 0 {
			return nil, full
		}
		b = pol.Pick(cands)
		b.acquire()
		if b.State() != StateActive || (!open && !b.Healthy()) {
			b.release() // changed under us: choose again among the rest
			continue
		}
		if cfg.MaxInFlightPerBackend > 0 && b.InFlight() > cfg.MaxInFlightPerBackend {
			b.release()
			t.skip = append(t.skip, b)
			full = true
			continue
		}
		if open {
			p.pool.m.failOpen.Inc()
		}
		t.skip = append(t.skip, b)
		b.refs.Add(1) // before any removed check that guards a write for b
		t.held = append(t.held, b)
		return b, full
	}
	return nil, full
}

func (t *tries) skipped(b *Backend) bool {
	for _, x := range t.skip {
		if x == b {
			return true
		}
	}
	return false
}

// noteFailOpen logs when the proxy starts and stops failing open.
func (p *Proxy) noteFailOpen(open, any bool) {
	if open && any && !p.openFail.Load() && !p.openFail.Swap(true) {
		p.logger.Warn("no healthy backend: failing open to the active backends")
	} else if !open && p.openFail.Load() && p.openFail.Swap(false) {
		p.logger.Info("healthy backend available again: fail-open ended")
	}
}
