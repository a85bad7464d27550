package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/h1"
	"outrigger/internal/clientip"
	"outrigger/internal/logging"
)

// Connection states, for Shutdown: idle from the end of a response until the next request's
// head has been read (a Shutdown closes the connection then), busy while a request is served.
const (
	connIdle int32 = iota
	connBusy
	connClosed
)

// clientBufSize is the client connection's read buffer: a request head longer than this goes
// to net/http.
const clientBufSize = 4 << 10

// outFlushSize is how much response data is gathered before it is written to the client
// even though more is at hand.
const outFlushSize = 32 << 10

// watchDelay is how long a request waits on its backend before a goroutine starts watching
// the client connection for a close (as net/http's background read, but only for the few
// requests that take this long).
const watchDelay = 50 * time.Millisecond

// aLongTimeAgo is a deadline in the past: it unblocks any read at once.
var aLongTimeAgo = time.Unix(1, 0)

// errHandoff ends the fast path for a connection: the request goes to net/http.
var errHandoff = errors.New("request left to net/http")

// fastConn is one client connection on the fast path, with everything its requests reuse.
type fastConn struct {
	f        *FastPath
	c        net.Conn
	br       *bufio.Reader
	out      []byte // response bytes not yet written to the client
	peer     netip.Addr
	peerText string
	state    atomic.Int32
	set      FastSettings // as read for the current request

	// The current request.
	req       h1.Request
	fwd       []byte // the head sent to backends
	body      []byte // the request body (at most retry_body_bytes)
	xff       []string
	method    string
	path      string
	id        string
	clientIP  netip.Addr
	begin     time.Time
	isHead    bool
	idemKey   bool // Idempotency-Key or X-Idempotency-Key present (net/http's replay rule)
	closeConn bool // the client asked to close after this response
	bytes     int64
	tries     tries
	resp      respHead
	kept      []keptField // response fields passed on, for a Connection-named removal
	scratch   []byte      // a backend line longer than the backend's read buffer
	rec       logging.RequestRecord

	// mu orders the watcher's abort against the attempt switching backend connections.
	mu   sync.Mutex
	cur  *syncConn // the backend connection of the attempt in progress
	gone bool      // the client went away (read EOF/error, or a write failed)

	watch     *time.Timer
	armed     bool
	watchStop atomic.Bool
	watchDone chan struct{}
}

// newConn takes a fastConn from the pool for c.
func (f *FastPath) newConn(c net.Conn) *fastConn {
	fc, _ := f.conns.Get().(*fastConn)
	if fc == nil {
		fc = &fastConn{
			f:         f,
			br:        bufio.NewReaderSize(nil, clientBufSize),
			out:       make([]byte, 0, 4<<10),
			fwd:       make([]byte, 0, 1<<10),
			watchDone: make(chan struct{}, 1),
		}
	}
	fc.c = c
	fc.br.Reset(c)
	fc.peer = peerOf(c)
	fc.peerText = ""
	if fc.peer.IsValid() {
		fc.peerText = fc.peer.String()
	}
	fc.state.Store(connIdle)
	fc.gone = false
	return fc
}

// putConn returns fc to the pool; its goroutines (watcher) have ended.
func (f *FastPath) putConn(fc *fastConn) {
	fc.c = nil
	fc.br.Reset(nil)
	fc.out = fc.out[:0]
	if cap(fc.out) > 64<<10 {
		fc.out = make([]byte, 0, 4<<10)
	}
	if cap(fc.body) > 64<<10 {
		fc.body = nil
	}
	if cap(fc.scratch) > 64<<10 {
		fc.scratch = nil
	}
	fc.req.Fields = fc.req.Fields[:0]
	fc.xff = fc.xff[:0]
	fc.rec = logging.RequestRecord{}
	fc.method, fc.path, fc.id = "", "", ""
	f.conns.Put(fc)
}

// peerOf returns the address of c's peer without its port.
func peerOf(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().WithZone("")
	}
	return clientip.AddrFromRemote(c.RemoteAddr().String())
}

// serve runs the connection's request loop. It returns nil when the connection is to be
// closed, or the connection (with the bytes already read in front) to hand to net/http.
func (fc *fastConn) serve() net.Conn {
	fc.set = fc.f.opts.Settings()
	deadline(fc.c, fc.set.ReadHeaderTimeout) // the first request's head, from the start
	for first := true; ; first = false {
		if !first {
			fc.set = fc.f.opts.Settings()
			if !fc.awaitRequest(fc.set) {
				return nil
			}
		}
		err := fc.readHead(fc.set)
		if err == errHandoff {
			return fc.handoff()
		}
		if err != nil {
			return nil
		}
		if !fc.state.CompareAndSwap(connIdle, connBusy) {
			return nil // Shutdown took it while its head arrived
		}
		if !fc.serveRequest() {
			return nil
		}
		fc.state.Store(connIdle)
		if fc.f.closing.Load() {
			return nil
		}
	}
}

// deadline sets c's read deadline d from now, or none for d <= 0.
func deadline(c net.Conn, d time.Duration) {
	if d > 0 {
		_ = c.SetReadDeadline(time.Now().Add(d))
	} else {
		_ = c.SetReadDeadline(time.Time{})
	}
}

// awaitRequest waits up to the idle timeout for the next request to begin, then gives its
// head read_header_timeout. False if the client closed, timed out, or Shutdown woke it.
func (fc *fastConn) awaitRequest(set FastSettings) bool {
	if fc.br.Buffered() > 0 { // pipelined: the next request is here already
		deadline(fc.c, set.ReadHeaderTimeout)
		return true
	}
	deadline(fc.c, set.IdleTimeout)
	if _, err := fc.br.Peek(1); err != nil {
		return false
	}
	if fc.state.Load() != connIdle {
		return false
	}
	deadline(fc.c, set.ReadHeaderTimeout)
	return true
}

// wakeIfIdle closes the connection for Shutdown if it is idle (waiting for or reading a head).
func (fc *fastConn) wakeIfIdle() {
	if fc.state.CompareAndSwap(connIdle, connClosed) {
		_ = fc.c.SetReadDeadline(aLongTimeAgo)
	}
}

// cut closes the connection at once (Close), aborting its backend I/O.
func (fc *fastConn) cut() {
	fc.state.Store(connClosed)
	fc.mu.Lock()
	fc.gone = true
	if fc.cur != nil {
		fc.cur.abort()
	}
	fc.mu.Unlock()
	_ = fc.c.Close()
}

// closeClient closes the client connection.
func (fc *fastConn) closeClient() {
	_ = fc.c.Close()
}

// readHead reads until a whole request head is buffered and parsed into fc.req. errHandoff
// means net/http is to serve it: a head the fast path does not take, one longer than the
// read buffer or max_header_bytes, a body over retry_body_bytes, or https backends.
func (fc *fastConn) readHead(set FastSettings) error {
	for {
		n := fc.br.Buffered()
		buf, _ := fc.br.Peek(n)
		err := h1.ParseRequest(buf, &fc.req)
		if err == nil {
			if fc.req.HeadLen > set.MaxHeaderBytes || !fc.f.p.pool.allSync() ||
				fc.req.ContentLength > fc.f.p.cfg.Load().RetryBodyBytes {
				return errHandoff
			}
			return nil
		}
		if _, ok := err.(*h1.Unsupported); ok {
			return errHandoff
		}
		if n >= fc.br.Size() || n > set.MaxHeaderBytes {
			return errHandoff // net/http answers 431 or serves a long head
		}
		if _, err := fc.br.Peek(n + 1); err != nil {
			return err // EOF, reset or read_header_timeout: close, as net/http does
		}
	}
}

// handoff returns the connection for net/http, replaying what was read and not used.
func (fc *fastConn) handoff() net.Conn {
	_ = fc.c.SetReadDeadline(time.Time{})
	n := fc.br.Buffered()
	buf, _ := fc.br.Peek(n)
	return &replayConn{Conn: fc.c, pending: bytes.Clone(buf)}
}

// serveRequest serves the request whose head is in fc.req and reports whether the
// connection may carry another.
func (fc *fastConn) serveRequest() bool {
	cfg := fc.f.p.cfg.Load()
	fc.begin = time.Now()
	fc.prepare(cfg)
	_, _ = fc.br.Discard(fc.req.HeadLen)
	_ = fc.c.SetReadDeadline(time.Time{}) // bodies have no deadline (net/http's ReadTimeout 0)
	if n := fc.req.ContentLength; n > 0 {
		if int64(cap(fc.body)) < n {
			fc.body = make([]byte, n)
		}
		fc.body = fc.body[:n]
		if _, err := io.ReadFull(fc.br, fc.body); err != nil {
			fc.log(499, nil, 0, false) // the client left (or broke off) mid-body
			return false
		}
	} else {
		fc.body = fc.body[:0]
	}
	fc.mu.Lock()
	fc.gone = false
	fc.mu.Unlock()
	fc.arm()
	keep := fc.dispatch(cfg)
	fc.disarm()
	return keep && !fc.closeConn
}

// prepare builds the head sent to backends from fc.req, and the request's facts: the client's
// head minus hop-by-hop and spoofable fields, with X-Forwarded-For/-Host/-Proto and
// X-Request-Id set as the Proxy's Rewrite and logging.Middleware set them.
func (fc *fastConn) prepare(cfg *ProxyConfig) {
	r := &fc.req
	fc.method = methodString(r.Method)
	fc.isHead = fc.method == "HEAD"
	fc.closeConn = r.Close
	fc.path = pathString(r.Path)
	fc.bytes, fc.idemKey, fc.id = 0, false, ""
	trusted := cfg.TrustedProxies.Trusted(fc.peer)
	fc.xff = fc.xff[:0]
	seenID := false

	fwd := append(fc.fwd[:0], r.Method...)
	fwd = append(fwd, ' ')
	fwd = append(fwd, r.Target...)
	fwd = append(fwd, " HTTP/1.1\r\n"...)
	for i := range r.Fields {
		fl := &r.Fields[i]
		switch fl.Kind {
		case h1.KindXForwardedFor:
			if trusted {
				fc.xff = append(fc.xff, string(fl.Value))
			}
			continue
		case h1.KindXRequestID:
			if !seenID {
				seenID = true
				if id := string(fl.Value); logging.ValidRequestID(id) {
					fc.id = id
				}
			}
			continue
		case h1.KindConnection, h1.KindKeepAlive, h1.KindProxyConnection, h1.KindProxyAuthenticate,
			h1.KindProxyAuthorization, h1.KindTE, h1.KindTrailer, h1.KindUpgrade,
			h1.KindXForwardedHost, h1.KindXForwardedProto, h1.KindForwarded, h1.KindXRealIP,
			h1.KindXClientIP, h1.KindTrueClientIP:
			continue
		case h1.KindOther:
			if bytes.IndexByte(fl.Name, '_') >= 0 && clientip.SpoofableAlias(fl.Name) {
				continue
			}
			if isIdempotencyKey(fl.Name) {
				fc.idemKey = true
			}
		}
		fwd = append(fwd, fl.Line...)
	}
	if fc.id == "" {
		fc.id = fc.f.ids.Next()
	}
	xff := fc.peerText
	if trusted {
		xff = cfg.TrustedProxies.ForwardedForFrom(fc.peer, fc.xff)
		fc.clientIP = cfg.TrustedProxies.ClientIPFrom(fc.peer, fc.xff)
	} else {
		fc.clientIP = fc.peer
	}
	if xff != "" {
		fwd = appendField(fwd, "X-Forwarded-For: ", xff)
	}
	fwd = append(fwd, "X-Forwarded-Host: "...)
	fwd = append(fwd, r.Host...)
	fwd = append(fwd, "\r\n"...)
	if fc.f.opts.TLS {
		fwd = append(fwd, "X-Forwarded-Proto: https\r\n"...)
	} else {
		fwd = append(fwd, "X-Forwarded-Proto: http\r\n"...)
	}
	fwd = appendField(fwd, "X-Request-Id: ", fc.id)
	fc.fwd = append(fwd, "\r\n"...)
}

// appendField appends "name: value\r\n" (name includes the colon and space).
func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// isIdempotencyKey reports whether name is Idempotency-Key or X-Idempotency-Key.
func isIdempotencyKey(name []byte) bool {
	return bytes.EqualFold(name, []byte("Idempotency-Key")) || bytes.EqualFold(name, []byte("X-Idempotency-Key"))
}

// methodString returns m as a string, without allocating for the common methods.
func methodString(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	}
	return string(m)
}

// pathString is the decoded path, as net/http's URL.Path (h1 accepts only valid escapes).
func pathString(p []byte) string {
	if bytes.IndexByte(p, '%') < 0 {
		return string(p)
	}
	s, err := url.PathUnescape(string(p))
	if err != nil {
		return string(p)
	}
	return s
}

// log writes the request's access line.
func (fc *fastConn) log(code int, last *Backend, attempts int, broken bool) {
	l := fc.f.opts.Log
	if l == nil {
		return
	}
	name := ""
	if last != nil {
		name = last.name
	}
	fc.rec = logging.RequestRecord{
		Method:    fc.method,
		Path:      fc.path,
		Status:    code,
		Duration:  time.Since(fc.begin),
		ClientIP:  fc.clientIP,
		RequestID: fc.id,
		Bytes:     fc.bytes,
		Backend:   name,
		Attempts:  attempts,
		Broken:    broken,
	}
	l.Log(&fc.rec)
}

// arm starts the timer after which the client connection is watched for a close while the
// request waits on its backend. With pipelined bytes already buffered there is nothing to
// watch (net/http does not either).
func (fc *fastConn) arm() {
	fc.watchStop.Store(false)
	if fc.br.Buffered() > 0 {
		return
	}
	if fc.watch == nil {
		fc.watch = time.AfterFunc(watchDelay, fc.watchClient)
	} else {
		fc.watch.Reset(watchDelay)
	}
	fc.armed = true
}

// disarm stops the watch: the timer if it has not fired, else the watcher itself, which is
// unblocked with a past read deadline and waited for.
func (fc *fastConn) disarm() {
	if !fc.armed {
		return
	}
	fc.armed = false
	if fc.watch.Stop() {
		return
	}
	fc.watchStop.Store(true)
	_ = fc.c.SetReadDeadline(aLongTimeAgo)
	<-fc.watchDone
}

// watchClient runs (on the timer's goroutine) while the request waits on its backend: a read
// that ends in an error or EOF means the client went away, and the backend I/O is aborted.
// Bytes that arrive (a pipelined request) stay in the buffer for the loop.
func (fc *fastConn) watchClient() {
	defer func() { fc.watchDone <- struct{}{} }()
	if _, err := fc.br.Peek(1); err == nil || fc.watchStop.Load() {
		return
	}
	fc.mu.Lock()
	fc.gone = true
	if fc.cur != nil {
		fc.cur.abort()
	}
	fc.mu.Unlock()
}

// use makes sc the attempt's backend connection; false if the client is gone already.
func (fc *fastConn) use(sc *syncConn) bool {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.gone {
		return false
	}
	fc.cur = sc
	return true
}

// unuse ends the use of the attempt's backend connection.
func (fc *fastConn) unuse() {
	fc.mu.Lock()
	fc.cur = nil
	fc.mu.Unlock()
}

// isGone reports whether the client went away.
func (fc *fastConn) isGone() bool {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.gone
}

// setGone records that writing to the client failed.
func (fc *fastConn) setGone() {
	fc.mu.Lock()
	fc.gone = true
	fc.mu.Unlock()
}

// flush writes the pending response bytes to the client; false (and the client is gone) if
// that failed.
func (fc *fastConn) flush() bool {
	if len(fc.out) == 0 {
		return true
	}
	_, err := fc.c.Write(fc.out)
	fc.out = fc.out[:0]
	if err != nil {
		fc.setGone()
		return false
	}
	return true
}

// write writes p to the client after the pending bytes; false if the client is gone.
func (fc *fastConn) write(p []byte) bool {
	if !fc.flush() {
		return false
	}
	if _, err := fc.c.Write(p); err != nil {
		fc.setGone()
		return false
	}
	return true
}

// replayConn is a client connection handed to net/http: its first reads return the bytes
// the fast path had read and not used.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
