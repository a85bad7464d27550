package frontend

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/balancer"
	"outrigger/internal/clientip"
	"outrigger/internal/h1"
)

// loop is lb's own HTTP/1.1 connection loop for one Listener: one goroutine per client
// connection reads each request head with h1, forwards the request through the Proxy, and
// writes the answer, without net/http's per-request machinery (request and header maps,
// contexts, goroutines). Shutdown closes idle connections at once and busy ones after the
// answer in progress, which goes out with "Connection: close".
type loop struct {
	l       *Listener
	proxy   *balancer.Proxy
	dates   h1.DateCache
	conns   sync.Pool // *conn with their buffers, between connections
	closing atomic.Bool

	mu   sync.Mutex // guards live
	live map[*conn]struct{}
}

// Connection states, for shutdown: idle from the end of an answer until the next request's
// head has been read, busy while a request is served.
const (
	connIdle int32 = iota
	connBusy
	connClosed
)

// clientBufSize is the client connection's read buffer; a longer head grows it up to
// max_header_bytes for as long as it is read.
const clientBufSize = 4 << 10

func newLoop(l *Listener) *loop {
	return &loop{l: l, proxy: l.opts.Proxy, live: map[*conn]struct{}{}}
}

// serve serves the requests of c until the client closes it, an error, a request that asks
// to close, or shutdown; then it closes c.
func (lp *loop) serve(c net.Conn, tls bool, headDeadline time.Time) {
	cc := lp.get(c, tls)
	if lp.track(cc) {
		cc.serve(headDeadline)
		lp.untrack(cc)
	}
	if cc.linger {
		lingerClose(c)
	}
	_ = c.Close()
	lp.put(cc)
}

// Lingering close: how long and how much a closing connection is read for.
const (
	lingerTime  = 500 * time.Millisecond // net/http's rstAvoidanceDelay
	lingerBytes = 256 << 10
)

// lingerClose half-closes c and reads what the client still sends for a while, so that the
// close does not become a reset that destroys the answer before the client read it (as
// net/http's closeWriteAndWait).
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c, lingerBytes)
}

// get takes a conn from the pool for c.
func (lp *loop) get(c net.Conn, tls bool) *conn {
	cc, _ := lp.conns.Get().(*conn)
	if cc == nil {
		cc = &conn{lp: lp, rd: h1.NewReader(nil, clientBufSize), out: make([]byte, 0, 4<<10)}
		cc.watch.done = make(chan struct{}, 1)
	}
	cc.c, cc.tls = c, tls
	cc.rd.Reset(c)
	cc.peer = peerOf(c)
	cc.state.Store(connIdle)
	cc.watch.gone = false
	cc.linger = false
	return cc
}

// put returns cc to the pool; its goroutines have ended.
func (lp *loop) put(cc *conn) {
	cc.c = nil
	cc.rd.Reset(nil)
	cc.out = cc.out[:0]
	if cap(cc.out) > 64<<10 {
		cc.out = make([]byte, 0, 4<<10)
	}
	cc.req.Fields = cc.req.Fields[:0]
	cc.breq = balancer.Request{}
	lp.conns.Put(cc)
}

// peerOf returns the address of c's peer without its port.
func peerOf(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().WithZone("")
	}
	return clientip.AddrFromRemote(c.RemoteAddr().String())
}

// track registers a new connection; false once the loop is closing.
func (lp *loop) track(cc *conn) bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.closing.Load() {
		return false
	}
	lp.live[cc] = struct{}{}
	return true
}

func (lp *loop) untrack(cc *conn) {
	lp.mu.Lock()
	delete(lp.live, cc)
	lp.mu.Unlock()
}

// shutdown stops taking requests: idle connections are closed at once, busy ones after the
// answer in progress. It returns when no connection is left or ctx is done.
func (lp *loop) shutdown(ctx context.Context) error {
	lp.closing.Store(true)
	left := func() int {
		lp.mu.Lock()
		defer lp.mu.Unlock()
		for cc := range lp.live {
			cc.wakeIfIdle()
		}
		return len(lp.live)
	}
	if !waitDrained(ctx.Done(), left) {
		return ctx.Err()
	}
	return nil
}

// waitDrained calls left, which nudges the connections still open toward their end and
// counts them, at growing intervals (1 ms up to 100 ms) until it counts none (true) or done
// is closed (false).
func waitDrained(done <-chan struct{}, left func() int) bool {
	wait := time.Millisecond
	for left() > 0 {
		t := time.NewTimer(wait)
		select {
		case <-done:
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
	return true
}

// closeAll closes every connection now, cutting the answers in progress.
func (lp *loop) closeAll() {
	lp.closing.Store(true)
	lp.mu.Lock()
	defer lp.mu.Unlock()
	for cc := range lp.live {
		cc.cut()
	}
}
