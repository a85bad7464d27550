package balancer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"
)

// syncTransport is an HTTP/1.1 http.RoundTripper for one plain-HTTP backend that does the
// backend I/O on the calling goroutine: take an idle connection (or dial), write the request,
// read the response head, hand the body back; the connection goes back to the idle pool when
// the body reached EOF. http.Transport hands every request to a writeLoop and a readLoop
// goroutine and back (≈ 17 µs per request measured under lb); this does not.
//
// It serves only requests it can replay (no body, or one buffered with GetBody) that are not
// upgrades or Expect requests (syncEligible); the rest go through the backend's
// http.Transport. It keeps what lb relies on from http.Transport: dial errors are dialErrors,
// the per-try timeout runs from request written to response headers (a read deadline cleared
// once they arrive), the request's context aborts a blocked read or write, idle connections
// close after idleConnTimeout or on CloseIdleConnections, a connection is reused only after
// its response body was read to EOF and neither side asked to close, 1xx answers are skipped
// (and passed to a ClientTrace's Got1xxResponse, as ReverseProxy relies on), and a request that
// failed on a reused connection the backend had closed is retried once on a new connection by
// net/http's rules (nothing written, or replayable and no response byte read).
type syncTransport struct {
	addr        string
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	perTry      func() time.Duration
	idleTimeout time.Duration

	mu   sync.Mutex
	idle []*syncConn // most recently used last
}

func newSyncTransport(addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error), perTry func() time.Duration) *syncTransport {
	return &syncTransport{addr: addr, dial: dial, perTry: perTry, idleTimeout: idleConnTimeout}
}

// syncEligible reports whether r may go through a syncTransport: its body is absent or
// replayable, and it is neither an upgrade nor waiting for 100-continue.
func syncEligible(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	h := r.Header
	return len(h["Upgrade"]) == 0 && len(h["Expect"]) == 0
}

// replayableByNetHTTP is net/http's Request.isReplayable: a request it would send again after
// a connection broke once something was written.
func replayableByNetHTTP(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	return replayableMethod(r.Method, len(r.Header["Idempotency-Key"]) > 0 || len(r.Header["X-Idempotency-Key"]) > 0)
}

// replayableMethod is the rest of net/http's rule, for a request whose body can be sent again:
// an idempotent method, or an idempotency key.
func replayableMethod(method string, idempotencyKey bool) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return idempotencyKey
}

// RoundTrip sends r on an idle or new connection.
func (t *syncTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	replayable := replayableByNetHTTP(r)
	req := r
	for try := 0; ; try++ {
		// An idle connection is checked to be still open and silent first (http.Transport's
		// readLoop notices a close or unsolicited bytes while idle; this has none): bytes that
		// arrived while idle would otherwise be read as this request's response.
		sc, reused, err := t.conn(ctx, try > 0)
		if err != nil {
			return nil, err
		}
		res, err := sc.roundTrip(ctx, req, t.perTry())
		if err == nil {
			res.Request = r
			return res, nil
		}
		var fe *syncError
		if try > 0 || !reused || ctx.Err() != nil || !errors.As(err, &fe) || !fe.retryOnNewConn(replayable) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		// The backend had closed this idle connection: once more on a new one.
		if req, err = rewind(r); err != nil {
			return nil, err
		}
	}
}

// rewind returns a copy of r with a fresh body for a second try.
func rewind(r *http.Request) (*http.Request, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return r, nil
	}
	body, err := r.GetBody()
	if err != nil {
		return nil, fmt.Errorf("rewind request body: %w", err)
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = body
	return r2, nil
}

// conn returns an idle connection (reused) or a new one. fresh skips the idle pool. Idle
// connections the backend has closed or sent unsolicited bytes on are dropped.
func (t *syncTransport) conn(ctx context.Context, fresh bool) (sc *syncConn, reused bool, err error) {
	for !fresh {
		sc = t.takeIdle()
		if sc == nil {
			break
		}
		if sc.open() {
			return sc, true, nil
		}
		_ = sc.c.Close()
	}
	c, err := t.dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	sc = &syncConn{t: t, c: c}
	sc.initPeek()
	sc.br = bufio.NewReaderSize(countingReader{sc}, 4<<10)
	sc.bw = bufio.NewWriterSize(countingWriter{sc}, 4<<10)
	return sc, false, nil
}

// takeIdle pops the most recently used idle connection, or nil.
func (t *syncTransport) takeIdle() *syncConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.idle)
	if n == 0 {
		return nil
	}
	sc := t.idle[n-1]
	t.idle[n-1] = nil
	t.idle = t.idle[:n-1]
	sc.idle = false
	sc.idleTimer.Stop() // if it fired already, expire finds sc no longer idle
	return sc
}

// put returns a connection whose response ended cleanly to the idle pool.
func (t *syncTransport) put(sc *syncConn) {
	t.mu.Lock()
	if len(t.idle) >= maxIdleConnsPerHost {
		t.mu.Unlock()
		_ = sc.c.Close()
		return
	}
	sc.idle = true
	t.idle = append(t.idle, sc)
	if sc.idleTimer == nil {
		sc.idleTimer = time.AfterFunc(t.idleTimeout, sc.expire)
	} else {
		sc.idleTimer.Reset(t.idleTimeout)
	}
	t.mu.Unlock()
}

// CloseIdleConnections closes every idle connection (drain, down mark, removal).
func (t *syncTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	for _, sc := range idle {
		sc.idle = false
		sc.idleTimer.Stop()
	}
	t.mu.Unlock()
	for _, sc := range idle {
		_ = sc.c.Close()
	}
}

// idleCount returns the number of idle connections (tests).
func (t *syncTransport) idleCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idle)
}

// syncConn is one backend connection of a syncTransport.
type syncConn struct {
	t      *syncTransport
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	nread  int64 // bytes read from c
	nwrite int64 // bytes written to c
	// raw, peek, peekBuf and alive serve open (used by one goroutine at a time).
	raw     syscall.RawConn
	peek    func(fd uintptr) bool
	peekBuf [1]byte
	alive   bool
	// headLimit, while a response head is read, is the nread past which reading fails.
	headLimit int64

	idle      bool        // in t.idle; guarded by t.mu
	idleTimer *time.Timer // closes the connection after idleConnTimeout idle; guarded by t.mu

	mu        sync.Mutex // orders deadline changes against a cancellation
	cancelled bool
}

type countingReader struct{ sc *syncConn }

func (r countingReader) Read(p []byte) (int, error) {
	if r.sc.headLimit > 0 {
		left := r.sc.headLimit - r.sc.nread
		if left <= 0 {
			return 0, errHeadersTooLarge
		}
		p = p[:min(int64(len(p)), left)]
	}
	n, err := r.sc.c.Read(p)
	r.sc.nread += int64(n)
	return n, err
}

type countingWriter struct{ sc *syncConn }

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.sc.c.Write(p)
	w.sc.nwrite += int64(n)
	return n, err
}

// expire closes the connection if it is still idle when its idle timer fires.
func (sc *syncConn) expire() {
	t := sc.t
	t.mu.Lock()
	if !sc.idle {
		t.mu.Unlock()
		return
	}
	for i, x := range t.idle {
		if x == sc {
			t.idle = append(t.idle[:i], t.idle[i+1:]...)
			break
		}
	}
	sc.idle = false
	t.mu.Unlock()
	_ = sc.c.Close()
}

// abort unblocks any read or write on the connection for good (the request's context ended).
func (sc *syncConn) abort() {
	sc.mu.Lock()
	sc.cancelled = true
	_ = sc.c.SetDeadline(aLongTimeAgo)
	sc.mu.Unlock()
}

// setReadDeadline sets the read deadline unless the connection was aborted.
func (sc *syncConn) setReadDeadline(t time.Time) {
	sc.mu.Lock()
	if !sc.cancelled {
		_ = sc.c.SetReadDeadline(t)
	}
	sc.mu.Unlock()
}

// open reports whether an idle connection is still open and silent, without blocking: a
// close by the backend (EOF), an error or unsolicited bytes all make it unusable.
func (sc *syncConn) open() bool {
	if sc.raw == nil {
		return true // not a socket: nothing to peek at
	}
	sc.alive = false
	err := sc.raw.Read(sc.peek)
	return err == nil && sc.alive
}

// initPeek prepares open's non-blocking peek once per connection (no allocation per reuse).
func (sc *syncConn) initPeek() {
	sys, ok := sc.c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sys.SyscallConn()
	if err != nil {
		return
	}
	sc.raw = raw
	sc.peek = func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), sc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		sc.alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	}
}

// syncError is a failed round trip, with what net/http's retry rules need to know.
type syncError struct {
	err            error
	nothingWritten bool // no byte of the request reached the connection
	noResponseByte bool // no byte of a response was read
	timeout        bool
}

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// retryOnNewConn is net/http's rule for sending a request once more on a new connection after
// a reused one failed: nothing of it was written, or, for a replayable request, no response
// byte came back and the failure was no timeout.
func (e *syncError) retryOnNewConn(replayable bool) bool {
	return e.nothingWritten || (replayable && e.noResponseByte && !e.timeout)
}

// failure is err on sc, closed or about to be, since its counters stood at written and read.
func (sc *syncConn) failure(err error, written, read int64) *syncError {
	var ne net.Error
	return &syncError{
		err:            err,
		nothingWritten: sc.nwrite == written,
		noResponseByte: sc.nread == read && sc.br.Buffered() == 0,
		timeout:        errors.As(err, &ne) && ne.Timeout(),
	}
}

// maxResponseHeaderBytes bounds the response head read (http.Transport's default limit).
const maxResponseHeaderBytes = 10 << 20

// errHeadersTooLarge ends a response head over maxResponseHeaderBytes.
var errHeadersTooLarge = errors.New("response headers exceed 10 MiB")

// max1xx bounds the interim responses skipped before the final one (as http.Transport).
const max1xx = 5

// roundTrip sends req on sc and reads the response head. On error sc is closed.
func (sc *syncConn) roundTrip(ctx context.Context, req *http.Request, perTry time.Duration) (*http.Response, error) {
	stop := context.AfterFunc(ctx, sc.abort)
	fail := func(err error, written, read int64) (*http.Response, error) {
		stop()
		_ = sc.c.Close()
		return nil, sc.failure(err, written, read)
	}
	written, read := sc.nwrite, sc.nread
	if sc.br.Buffered() > 0 {
		return fail(errors.New("backend sent bytes before the request"), written, read)
	}
	err := req.Write(sc.bw)
	if err == nil {
		err = sc.bw.Flush()
	}
	if err != nil {
		return fail(fmt.Errorf("write request: %w", err), written, read)
	}
	if perTry > 0 {
		sc.setReadDeadline(time.Now().Add(perTry))
	}
	var res *http.Response
	for n1xx := 0; ; n1xx++ {
		sc.headLimit = sc.nread - int64(sc.br.Buffered()) + maxResponseHeaderBytes
		res, err = http.ReadResponse(sc.br, req)
		sc.headLimit = 0
		if err != nil {
			return fail(fmt.Errorf("read response: %w", err), written, read)
		}
		code := res.StatusCode
		if code < 100 || code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
		if n1xx == max1xx {
			return fail(errors.New("too many 1xx informational responses"), written, read)
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(res.Header)); err != nil {
				return fail(err, written, read)
			}
		}
	}
	if perTry > 0 {
		sc.setReadDeadline(time.Time{}) // the per-try timeout never bounds the body
	}
	// After a 101 the connection speaks another protocol: never reuse it.
	keep := !res.Close && !req.Close && res.StatusCode != http.StatusSwitchingProtocols
	if res.Body == http.NoBody || res.Body == nil {
		res.Body = http.NoBody
		sc.done(stop, keep)
		return res, nil
	}
	res.Body = &syncBody{rc: res.Body, sc: sc, ctx: ctx, stop: stop, keep: keep}
	return res, nil
}

// done ends a round trip: the connection goes back to the pool if keep and it was not aborted.
func (sc *syncConn) done(stop func() bool, keep bool) {
	if !stop() { // the context ended: the deadline is in the past for good
		keep = false
	}
	if keep && sc.br.Buffered() == 0 {
		sc.t.put(sc)
		return
	}
	_ = sc.c.Close()
}

// syncBody is a response body that gives its connection back at EOF and closes it when the
// body is abandoned before its end (the rest is never drained).
type syncBody struct {
	rc   io.ReadCloser
	sc   *syncConn
	ctx  context.Context
	stop func() bool
	keep bool
	over bool
}

func (b *syncBody) Read(p []byte) (int, error) {
	if b.over {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.over = true
		b.sc.done(b.stop, b.keep)
	case err != nil:
		b.over = true
		b.sc.done(b.stop, false)
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

func (b *syncBody) Close() error {
	if !b.over {
		b.over = true
		b.sc.done(b.stop, false)
	}
	return nil
}
