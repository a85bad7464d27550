package balancer

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"outrigger/internal/h1"
)

// Backend connection settings fixed by DESIGN.md.
const (
	idleConnTimeout     = 60 * time.Second // shorter than the app's 120 s IdleTimeout
	maxIdleConnsPerHost = 256
)

// aLongTimeAgo is a deadline in the past: it unblocks any read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// connPool is lb's HTTP/1.1 client for one backend: its idle keep-alive connections and how
// to dial a new one (TCP, then TLS for an https backend). A connection is used by one
// request at a time, on the request's own goroutine; it goes back to the pool only after a
// complete response that neither side asked to close, and it is closed after 60 s idle, and
// when the backend is drained, marked down or removed.
type connPool struct {
	dial        func(ctx context.Context) (net.Conn, syscall.RawConn, error)
	idleTimeout time.Duration

	mu   sync.Mutex
	idle []*backendConn // most recently used last
}

func newConnPool(dial func(ctx context.Context) (net.Conn, syscall.RawConn, error)) *connPool {
	return &connPool{dial: dial, idleTimeout: idleConnTimeout}
}

// get returns an idle connection (reused) or a new one; fresh skips the idle pool. An idle
// connection is checked to be still open and silent first: bytes that arrived while it was
// idle (or the backend's close) would otherwise be read as the next request's answer.
func (p *connPool) get(ctx context.Context, fresh bool) (bc *backendConn, reused bool, err error) {
	for !fresh {
		bc = p.takeIdle()
		if bc == nil {
			break
		}
		if bc.open() {
			return bc, true, nil
		}
		_ = bc.c.Close()
	}
	c, raw, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	bc = &backendConn{pool: p, c: c, raw: raw}
	bc.initPeek()
	bc.rd = h1.NewReader(countingReader{bc}, 4<<10)
	bc.bw = bufio.NewWriterSize(countingWriter{bc}, 4<<10)
	return bc, false, nil
}

// takeIdle pops the most recently used idle connection, or nil.
func (p *connPool) takeIdle() *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	bc := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	bc.idle = false
	bc.idleTimer.Stop() // if it fired already, expire finds bc no longer idle
	return bc
}

// put returns a connection whose response ended cleanly to the idle pool.
func (p *connPool) put(bc *backendConn) {
	p.mu.Lock()
	if len(p.idle) >= maxIdleConnsPerHost {
		p.mu.Unlock()
		_ = bc.c.Close()
		return
	}
	bc.idle = true
	p.idle = append(p.idle, bc)
	if bc.idleTimer == nil {
		bc.idleTimer = time.AfterFunc(p.idleTimeout, bc.expire)
	} else {
		bc.idleTimer.Reset(p.idleTimeout)
	}
	p.mu.Unlock()
}

// closeIdle closes every idle connection (drain, down mark, removal).
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	for _, bc := range idle {
		bc.idle = false
		bc.idleTimer.Stop()
	}
	p.mu.Unlock()
	for _, bc := range idle {
		_ = bc.c.Close()
	}
}

// idleCount returns the number of idle connections (tests).
func (p *connPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// backendConn is one connection to a backend.
type backendConn struct {
	pool   *connPool
	c      net.Conn
	rd     *h1.Reader
	bw     *bufio.Writer
	nread  int64 // bytes read from c
	nwrite int64 // bytes written to c
	// raw, peek, peekBuf and alive serve open (used by one goroutine at a time); raw is the
	// TCP connection's, under TLS too.
	raw     syscall.RawConn
	peek    func(fd uintptr) bool
	peekBuf [1]byte
	alive   bool

	idle      bool        // in pool.idle; guarded by pool.mu
	idleTimer *time.Timer // closes the connection after idleConnTimeout idle; guarded by pool.mu

	mu        sync.Mutex // orders deadline changes against an abort
	cancelled bool
}

type countingReader struct{ bc *backendConn }

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.bc.c.Read(p)
	r.bc.nread += int64(n)
	return n, err
}

type countingWriter struct{ bc *backendConn }

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.bc.c.Write(p)
	w.bc.nwrite += int64(n)
	return n, err
}

// expire closes the connection if it is still idle when its idle timer fires.
func (bc *backendConn) expire() {
	p := bc.pool
	p.mu.Lock()
	if !bc.idle {
		p.mu.Unlock()
		return
	}
	for i, x := range p.idle {
		if x == bc {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	bc.idle = false
	p.mu.Unlock()
	_ = bc.c.Close()
}

// Abort unblocks any read or write on the connection for good (the client went away).
func (bc *backendConn) Abort() {
	bc.mu.Lock()
	bc.cancelled = true
	_ = bc.c.SetDeadline(aLongTimeAgo)
	bc.mu.Unlock()
}

// aborted reports whether Abort was called.
func (bc *backendConn) aborted() bool {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return bc.cancelled
}

// setReadDeadline sets the read deadline unless the connection was aborted.
func (bc *backendConn) setReadDeadline(t time.Time) {
	bc.mu.Lock()
	if !bc.cancelled {
		_ = bc.c.SetReadDeadline(t)
	}
	bc.mu.Unlock()
}

// release ends a use of bc: back to the idle pool if keep, nothing is left unread and it was
// not aborted, else closed.
func (bc *backendConn) release(keep bool) {
	if keep && len(bc.rd.Buffered()) == 0 && !bc.aborted() {
		bc.pool.put(bc)
		return
	}
	_ = bc.c.Close()
}

// open reports whether an idle connection is still open and silent, without blocking: a
// close by the backend (EOF), an error or unsolicited bytes all make it unusable.
func (bc *backendConn) open() bool {
	if bc.raw == nil {
		return true // not a socket: nothing to peek at
	}
	bc.alive = false
	err := bc.raw.Read(bc.peek)
	return err == nil && bc.alive
}

// initPeek prepares open's non-blocking peek once per connection (no allocation per reuse).
func (bc *backendConn) initPeek() {
	if bc.raw == nil {
		return
	}
	bc.peek = func(fd uintptr) bool {
		// recvfrom(2) without the source address syscall.Recvfrom decodes: one system
		// call, and a small stack frame (this runs deep in a fresh HTTP/2 handler's stack,
		// which a bigger frame makes the runtime grow and copy).
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&bc.peekBuf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		bc.alive = errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
		return true
	}
}

// connError is a failed exchange on a backend connection, with what net/http's rule for
// trying once more on a fresh connection needs to know.
type connError struct {
	err            error
	nothingWritten bool // no byte of the request reached the connection
	noResponseByte bool // no byte of a response was read
	timeout        bool
}

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// retryOnNewConn is net/http's rule for sending a request once more on a new connection after
// a reused one failed: nothing of it was written, or, for a replayable request, no response
// byte came back and the failure was no timeout.
func (e *connError) retryOnNewConn(replayable bool) bool {
	return e.nothingWritten || (replayable && e.noResponseByte && !e.timeout)
}

// failure is err on bc, closed or about to be, since its counters stood at written and read.
func (bc *backendConn) failure(err error, written, read int64) *connError {
	var ne net.Error
	return &connError{
		err:            err,
		nothingWritten: bc.nwrite == written,
		noResponseByte: bc.nread == read && len(bc.rd.Buffered()) == 0,
		timeout:        errors.As(err, &ne) && ne.Timeout(),
	}
}
