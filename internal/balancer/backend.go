package balancer

import (
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one upstream server: its address, its own pool of connections (lb's HTTP/1.1
// client), and its live state. State (active/draining) and health are separate dimensions.
type Backend struct {
	name  string
	url   *url.URL
	conns *connPool

	state    atomic.Uint32
	healthy  atomic.Bool
	answered atomic.Bool // the last active health check got an HTTP answer, of any status
	removed  atomic.Bool
	inFlight atomic.Int64
	refs     atomic.Int64 // client requests that may still touch b's series (see Proxy.finish)
	upgraded atomic.Int64
	requests atomic.Int64
	failures atomic.Int64
	ewmaNS   atomic.Int64 // response-header latency EWMA in nanoseconds; 0 = no sample yet
	changed  atomic.Int64 // when state or health last changed (or the backend was made), Unix ns

	idleWaiters atomic.Int32

	mu            sync.Mutex // guards the fields below
	idleCh        chan struct{}
	upgradedConns map[*upgradedConn]struct{}
	checksOK      int
	lastCheck     time.Time
	lastError     string
	version       string
}

// Name returns the backend's configured name.
func (b *Backend) Name() string { return b.name }

// URL returns a copy of the backend's base URL.
func (b *Backend) URL() *url.URL { u := *b.url; return &u }

// State returns whether the backend is active or draining.
func (b *Backend) State() State { return State(b.state.Load()) }

// Healthy reports the backend's health as last set by health checks.
func (b *Backend) Healthy() bool { return b.healthy.Load() }

// InFlight returns the number of requests dispatched whose response body is not yet copied.
func (b *Backend) InFlight() int64 { return b.inFlight.Load() }

// Eligible reports whether the backend may take new requests: active and healthy.
func (b *Backend) Eligible() bool { return b.State() == StateActive && b.Healthy() }

// Latency returns the backend's response-header latency moving average (0 before any sample).
func (b *Backend) Latency() time.Duration { return time.Duration(b.ewmaNS.Load()) }

// setState sets the backend's state, noting the time if it changed.
func (b *Backend) setState(st State) {
	if State(b.state.Swap(uint32(st))) != st {
		b.touch()
	}
}

// touch notes that state or health changed now.
func (b *Backend) touch() { b.changed.Store(time.Now().UnixNano()) }

// status returns a snapshot of b.
func (b *Backend) status() Status {
	s := Status{
		Name:       b.name,
		URL:        b.url.String(),
		State:      b.State(),
		Healthy:    b.Healthy(),
		Answered:   b.answered.Load(),
		InFlight:   b.inFlight.Load(),
		Upgraded:   b.upgraded.Load(),
		Requests:   b.requests.Load(),
		Failures:   b.failures.Load(),
		LastChange: time.Unix(0, b.changed.Load()),
	}
	b.mu.Lock()
	s.ChecksOK, s.LastCheck, s.LastError, s.Version = b.checksOK, b.lastCheck, b.lastError, b.version
	b.mu.Unlock()
	return s
}

// acquire counts a request as in flight on b.
func (b *Backend) acquire() { b.inFlight.Add(1) }

// release ends an in-flight request started with acquire.
func (b *Backend) release() {
	if b.inFlight.Add(-1) != 0 {
		return
	}
	if b.idleWaiters.Load() > 0 {
		b.mu.Lock()
		if b.idleCh != nil {
			close(b.idleCh)
			b.idleCh = nil
		}
		b.mu.Unlock()
	}
	if b.removed.Load() || b.State() == StateDraining {
		b.closeIdle() // connections freed by the last requests must not linger in the pool
	}
}

// idleChan registers a waiter and returns a channel closed at the next in-flight 0.
func (b *Backend) idleChan() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.idleCh == nil {
		b.idleCh = make(chan struct{})
	}
	return b.idleCh
}

// closeIdle closes the idle keep-alive connections to b.
func (b *Backend) closeIdle() { b.conns.closeIdle() }

// observeLatency folds one response-header latency sample into the EWMA.
func (b *Backend) observeLatency(d time.Duration) {
	const weight = 0.2
	for {
		old := b.ewmaNS.Load()
		next := int64(d)
		if old != 0 {
			next = int64(float64(old)*(1-weight) + float64(d)*weight)
		}
		if next <= 0 {
			next = 1
		}
		if b.ewmaNS.CompareAndSwap(old, next) {
			return
		}
	}
}

// trackUpgraded registers a hijacked (upgraded) client connection of b.
func (b *Backend) trackUpgraded(c net.Conn) net.Conn {
	uc := &upgradedConn{Conn: c, b: b}
	b.mu.Lock()
	if b.upgradedConns == nil {
		b.upgradedConns = make(map[*upgradedConn]struct{})
	}
	b.upgradedConns[uc] = struct{}{}
	b.mu.Unlock()
	b.upgraded.Add(1)
	return uc
}

// closeUpgraded closes every upgraded connection of b.
func (b *Backend) closeUpgraded() {
	b.mu.Lock()
	conns := make([]*upgradedConn, 0, len(b.upgradedConns))
	for c := range b.upgradedConns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// upgradedConn is a hijacked client connection that leaves its backend's count when closed.
type upgradedConn struct {
	net.Conn
	b    *Backend
	once sync.Once
}

// Close closes the connection and stops counting it.
func (c *upgradedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.b.mu.Lock()
		delete(c.b.upgradedConns, c)
		c.b.mu.Unlock()
		c.b.upgraded.Add(-1)
	})
	return err
}
