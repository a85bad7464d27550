package frontend

import (
	"net"
	"sync"
)

// ConnLimiter bounds open client connections across listeners (limits.max_conns); its limit
// can change at run time (a reload). Beyond the limit, accepting waits.
type ConnLimiter struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit int
	open  int
	done  bool
	// waiting counts the accepts waiting for a slot (an accept takes its slot first).
	waiting int
}

// NewConnLimiter returns a limiter of limit connections.
func NewConnLimiter(limit int) *ConnLimiter {
	l := &ConnLimiter{limit: limit}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// SetLimit changes the limit; waiting accepts proceed if it grew.
func (l *ConnLimiter) SetLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
	l.cond.Broadcast()
}

// Open returns the number of connections that hold a slot.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Full reports whether an accept waits for a slot: every one is held by an open connection.
func (l *ConnLimiter) Full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting > 0
}

// acquire waits for a free slot; false once the limiter is closed.
func (l *ConnLimiter) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.open >= l.limit && !l.done {
		l.waiting++
		l.cond.Wait()
		l.waiting--
	}
	if l.done {
		return false
	}
	l.open++
	return true
}

func (l *ConnLimiter) release() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
	l.cond.Signal()
}

// Close makes every waiting and later acquire fail (shutdown).
func (l *ConnLimiter) Close() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
	l.cond.Broadcast()
}

// limitListener takes a slot before each Accept (like netutil.LimitListener, with a limit a
// reload can change).
type limitListener struct {
	net.Listener
	l *ConnLimiter
}

func (ll *limitListener) Accept() (net.Conn, error) {
	if !ll.l.acquire() {
		return nil, net.ErrClosed
	}
	c, err := ll.Listener.Accept()
	if err != nil {
		ll.l.release()
		return nil, err
	}
	return &limitedConn{Conn: c, release: ll.l.release}, nil
}

// limitedConn gives its slot back on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
