package balancer

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolOptions configures a Pool.
type PoolOptions struct {
	// Registerer receives the balancer's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger is used for transport-level diagnostics; nil discards.
	Logger *slog.Logger
	// DialTimeout bounds a TCP connect (and TLS handshake) to a backend; 0 means 2s.
	DialTimeout time.Duration
	// PerTryTimeout bounds the wait from request written to response headers; 0 means 5s.
	PerTryTimeout time.Duration
	// TLSConfig is the client TLS configuration for https backends; nil uses the system roots.
	TLSConfig *tls.Config
}

// Pool is the set of backends. Readers see an immutable copy-on-write snapshot, so the
// request path takes no lock; changes are serialised by a mutex.
type Pool struct {
	mu          sync.Mutex // serialises writers
	snap        atomic.Pointer[snapshot]
	dialTimeout atomic.Int64
	perTry      time.Duration // guarded by mu
	perTryNS    atomic.Int64  // perTry for readers without mu (every attempt reads it)
	tlsConf     *tls.Config
	logger      *slog.Logger
	m           *metrics
}

type snapshot struct {
	list   []*Backend
	byName map[string]*Backend
}

// NewPool returns an empty pool whose metrics are registered on opts.Registerer.
func NewPool(opts PoolOptions) (*Pool, error) {
	p := &Pool{tlsConf: opts.TLSConfig, logger: opts.Logger, perTry: opts.PerTryTimeout}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if p.perTry <= 0 {
		p.perTry = 5 * time.Second
	}
	p.dialTimeout.Store(int64(opts.DialTimeout))
	p.perTryNS.Store(int64(p.perTry))
	p.snap.Store(&snapshot{byName: map[string]*Backend{}})
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, p)
	if err != nil {
		return nil, err
	}
	p.m = m
	return p, nil
}

// SetTimeouts changes the dial and per-try timeouts; each applies from the next dial or
// attempt on.
func (p *Pool) SetTimeouts(dial, perTry time.Duration) {
	if dial > 0 {
		p.dialTimeout.Store(int64(dial))
	}
	if perTry <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.perTry = perTry
	p.perTryNS.Store(int64(perTry))
}

// backends returns the current snapshot's backends in configured order (do not modify).
func (p *Pool) backends() []*Backend { return p.snap.Load().list }

// lookup returns the backend named name in the current snapshot.
func (p *Pool) lookup(name string) (*Backend, error) {
	b, ok := p.snap.Load().byName[name]
	if !ok {
		return nil, fmt.Errorf("backend %q: %w", name, ErrNotFound)
	}
	return b, nil
}

// newBackend builds an active, not yet healthy backend. Callers hold p.mu.
func (p *Pool) newBackend(name string, u *url.URL, draining bool) *Backend {
	dialTimeout := func() time.Duration { return time.Duration(p.dialTimeout.Load()) }
	b := &Backend{name: name, url: u,
		conns: newConnPool(newDialer(u.Host, u.Scheme == "https", dialTimeout, p.tlsConf))}
	b.touch()
	if draining {
		b.state.Store(uint32(StateDraining))
	}
	return b
}

// publish installs a new backend list. Callers hold p.mu.
func (p *Pool) publish(list []*Backend) {
	s := &snapshot{list: list, byName: make(map[string]*Backend, len(list))}
	for _, b := range list {
		s.byName[b.name] = b
	}
	p.snap.Store(s)
}

// retire finishes a backend that left the snapshot: no new requests reach it, its idle
// connections close now and the rest when its last request ends; its series are deleted.
func (p *Pool) retire(b *Backend) {
	b.state.Store(uint32(StateDraining))
	b.removed.Store(true)
	b.closeIdle()
	b.closeUpgraded()
	if !p.succeeded(b) {
		p.m.forget(b.name)
	}
	// A request still holding b may write a series after this; it deletes them when it ends
	// (Proxy.finish). Deleting above in any case keeps this simple and idempotent.
}

// succeeded reports whether the pool now holds another backend under b's name (a reload
// changed its URL): the name's metric series and passive count belong to the successor.
func (p *Pool) succeeded(b *Backend) bool {
	cur, ok := p.snap.Load().byName[b.name]
	return ok && cur != b
}

// Add puts a new backend at the end of the pool. It starts active and unhealthy: one passing
// health check admits it.
func (p *Pool) Add(name, rawURL string) (Status, error) {
	if err := ValidateName(name); err != nil {
		return Status{}, err
	}
	u, err := ValidateURL(rawURL)
	if err != nil {
		return Status{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.snap.Load()
	if _, ok := cur.byName[name]; ok {
		return Status{}, fmt.Errorf("add %q: %w", name, ErrExists)
	}
	b := p.newBackend(name, u, false)
	list := make([]*Backend, 0, len(cur.list)+1)
	list = append(append(list, cur.list...), b)
	p.publish(list)
	return b.status(), nil
}

// Remove drains the backend, waits until its in-flight count is 0 or ctx is done, then removes
// it whatever the count, closes its connections (upgraded ones too) and deletes its metric series.
// If a reload put another backend under the name meanwhile, that one is drained and waited
// for in turn: Remove never takes out a backend it has not drained.
func (p *Pool) Remove(ctx context.Context, name string) error {
	for {
		b, err := p.lookup(name)
		if err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		b.state.Store(uint32(StateDraining))
		b.closeIdle()
		_ = b.waitIdle(ctx) // past the deadline it goes anyway
		p.mu.Lock()
		cur := p.snap.Load()
		if cur.byName[name] != b {
			p.mu.Unlock()
			continue // removed or replaced meanwhile: look again
		}
		list := make([]*Backend, 0, len(cur.list))
		for _, x := range cur.list {
			if x != b {
				list = append(list, x)
			}
		}
		p.publish(list)
		p.retire(b)
		p.mu.Unlock()
		return nil
	}
}

// Drain stops new requests to the backend from the instant it returns; requests already
// dispatched finish. It closes the backend's idle connections. Draining twice is fine.
func (p *Pool) Drain(name string) (Status, error) {
	b, err := p.lookup(name)
	if err != nil {
		return Status{}, fmt.Errorf("drain: %w", err)
	}
	b.setState(StateDraining)
	b.closeIdle()
	return b.status(), nil
}

// Enable makes a backend active again (it takes requests once it is healthy).
func (p *Pool) Enable(name string) (Status, error) {
	b, err := p.lookup(name)
	if err != nil {
		return Status{}, fmt.Errorf("enable: %w", err)
	}
	b.setState(StateActive)
	return b.status(), nil
}

// Get returns one backend's status.
func (p *Pool) Get(name string) (Status, error) {
	b, err := p.lookup(name)
	if err != nil {
		return Status{}, err
	}
	return b.status(), nil
}

// Snapshot returns every backend's status in configured order.
func (p *Pool) Snapshot() []Status {
	list := p.backends()
	out := make([]Status, len(list))
	for i, b := range list {
		out[i] = b.status()
	}
	return out
}

// WaitIdle blocks until the backend has no request in flight or ctx is done.
func (p *Pool) WaitIdle(ctx context.Context, name string) error {
	b, err := p.lookup(name)
	if err != nil {
		return fmt.Errorf("wait idle: %w", err)
	}
	return b.waitIdle(ctx)
}

// waitIdle blocks until b has no request in flight or ctx is done.
func (b *Backend) waitIdle(ctx context.Context) error {
	b.idleWaiters.Add(1)
	defer b.idleWaiters.Add(-1)
	for {
		ch := b.idleChan()
		if b.inFlight.Load() == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %q to be idle (%d in flight): %w", b.name, b.inFlight.Load(), ctx.Err())
		}
	}
}

// CloseUpgraded closes the backend's upgraded (WebSocket) connections, e.g. at drain_timeout.
func (p *Pool) CloseUpgraded(name string) {
	if b, err := p.lookup(name); err == nil {
		b.closeUpgraded()
	}
}

// Spec describes one configured backend for Reconcile.
type Spec struct {
	Name, URL string
	// Draining is the initial state of a backend Reconcile creates; kept backends keep theirs.
	Draining bool
}

// Reconcile makes the pool's membership and order match specs (a config reload). A backend
// whose name and URL are unchanged is kept as is: health, counters, drain state, connections.
// A name whose URL changed is replaced (reported as removed and added). Removed backends take
// no new requests; their in-flight requests finish. Nothing changes if any spec is invalid.
func (p *Pool) Reconcile(specs []Spec) (added, removed []string, err error) {
	urls := make([]*url.URL, len(specs))
	seen := make(map[string]bool, len(specs))
	for i, s := range specs {
		if err := ValidateName(s.Name); err != nil {
			return nil, nil, fmt.Errorf("reconcile: %w", err)
		}
		if seen[s.Name] {
			return nil, nil, fmt.Errorf("reconcile: %w: duplicate name %q", ErrInvalid, s.Name)
		}
		seen[s.Name] = true
		if urls[i], err = ValidateURL(s.URL); err != nil {
			return nil, nil, fmt.Errorf("reconcile %q: %w", s.Name, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.snap.Load()
	list := make([]*Backend, 0, len(specs))
	kept := make(map[*Backend]bool, len(specs))
	for i, s := range specs {
		if b, ok := cur.byName[s.Name]; ok && b.url.String() == urls[i].String() {
			list = append(list, b)
			kept[b] = true
			continue
		}
		list = append(list, p.newBackend(s.Name, urls[i], s.Draining))
		added = append(added, s.Name)
	}
	var gone []*Backend
	for _, b := range cur.list {
		if !kept[b] {
			gone = append(gone, b)
			removed = append(removed, b.name)
		}
	}
	p.publish(list)
	for _, b := range gone {
		p.retire(b)
	}
	return added, removed, nil
}
