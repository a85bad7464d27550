package frontend

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"outrigger/internal/balancer"
)

// h2Stream is one request stream on lb's HTTP/2 server, and the client side of that request
// as the forwarding loop sees it (balancer.Client): its answer goes out as HEADERS and DATA
// frames through the connection's h2Writer.
type h2Stream struct {
	hc *h2Conn
	id uint32

	// The request, as the read loop checked it.
	fields    []hpack.HeaderField
	method    string
	target    string
	authority string
	declared  int64 // the content-length field, -1 for none
	noBody    bool  // the HEADERS frame ended the stream
	tooLarge  bool  // the header block was longer than max_header_bytes: answered 431
	begin     time.Time

	// Send side, guarded by hc.w.mu.
	sendWindow int32
	sendState  uint8

	body h2Body

	// The answer, of the stream's goroutine.
	bodyless bool  // no DATA follows the head
	left     int64 // body bytes still to come of a known length, -1 when unknown
	aborted  bool  // the backend broke the answer off
	failed   bool  // a write to the client failed

	watchMu sync.Mutex // orders an abort against the attempt switching backend connections
	aborter balancer.Aborter
	gone    atomic.Bool // the client reset the stream, or the connection ended
	reset   atomic.Bool // a RST_STREAM went either way: the stream is closed

	outgoing balancer.Outgoing
	fw       balancer.Forwarding
	req      balancer.Request
	cookies  bytes.Buffer
	resp     []hpack.HeaderField
	scratch  []byte
}

// Send states of a stream.
const (
	h2SendOpen   uint8 = iota // lb may still send frames
	h2SendEnded               // lb sent END_STREAM
	h2SendClosed              // reset, by either side
)

// h2Server is lb's own HTTP/2 server for one proxy Listener; shutdown sends every
// connection a GOAWAY and waits for its streams.
type h2Server struct {
	l       *Listener
	proxy   *balancer.Proxy
	dates   dateStrings
	closing atomic.Bool
	streams sync.Pool // *h2Stream

	// Workers: a goroutine that served a stream waits for the next one (up to
	// h2IdleWorkers of them wait), so that a stream seldom pays for a new goroutine and the
	// growth of its stack, which the forwarding loop's depth makes about a tenth of a
	// request's CPU.
	work        chan *h2Stream
	idleWorkers atomic.Int32
	stop        chan struct{} // closed once the Listener has shut down: waiting workers end
	stopOnce    sync.Once

	mu   sync.Mutex
	live map[*h2Conn]struct{}
}

// h2IdleWorkers bounds the goroutines of one Listener that wait for a stream.
const h2IdleWorkers = 128

func newH2Server(l *Listener) *h2Server {
	return &h2Server{l: l, proxy: l.opts.Proxy, live: map[*h2Conn]struct{}{},
		work: make(chan *h2Stream), stop: make(chan struct{})}
}

// release ends the waiting workers: the Listener has shut down.
func (s *h2Server) release() { s.stopOnce.Do(func() { close(s.stop) }) }

// start has a waiting worker serve st, or a new one.
func (s *h2Server) start(st *h2Stream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

// worker serves st, then the streams start hands it, until too many wait or the server stops.
func (s *h2Server) worker(st *h2Stream) {
	for {
		st.run()
		if s.idleWorkers.Add(1) > h2IdleWorkers {
			s.idleWorkers.Add(-1)
			return
		}
		select {
		case st = <-s.work:
			s.idleWorkers.Add(-1)
		case <-s.stop:
			s.idleWorkers.Add(-1)
			return
		}
	}
}

// serve serves one connection that negotiated h2, then closes it.
func (s *h2Server) serve(c net.Conn, headDeadline time.Time) {
	hc := &h2Conn{srv: s, c: c, peer: peerOf(c), set: s.l.settings(), streams: map[uint32]*h2Stream{}}
	s.mu.Lock()
	closing := s.closing.Load()
	if !closing {
		s.live[hc] = struct{}{}
	}
	s.mu.Unlock()
	if !closing {
		hc.serve(headDeadline)
		s.mu.Lock()
		delete(s.live, hc)
		s.mu.Unlock()
	}
	_ = c.Close()
}

// shutdown sends every connection a GOAWAY; each closes once its streams are done. It
// returns when none is left, or ctx is done.
func (s *h2Server) shutdown(done <-chan struct{}) bool {
	s.closing.Store(true)
	wait := time.Millisecond
	for {
		s.mu.Lock()
		conns := make([]*h2Conn, 0, len(s.live))
		for hc := range s.live {
			conns = append(conns, hc)
		}
		s.mu.Unlock()
		if len(conns) == 0 {
			return true
		}
		for _, hc := range conns {
			hc.shutdown()
		}
		t := time.NewTimer(wait)
		select {
		case <-done:
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// closeAll closes every connection now, cutting its streams.
func (s *h2Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for hc := range s.live {
		_ = hc.c.Close()
	}
}

// onHeaders opens a stream for a request's HEADERS, or ends a body with trailers.
func (hc *h2Conn) onHeaders(f *http2.MetaHeadersFrame) (http2.ErrCode, bool) {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ErrCodeProtocol, false
	}
	if id <= hc.maxStreamID {
		if !hc.withStream(id, func(st *h2Stream) { hc.onTrailers(st, f) }) {
			return http2.ErrCodeStreamClosed, false // a closed stream
		}
		return 0, true
	}
	hc.setMaxStreamID(id)
	if f.HasPriority() && f.Priority.StreamDep == id {
		hc.w.rstStream(id, http2.ErrCodeProtocol) // depends on itself
		return 0, true
	}
	hc.mu.Lock()
	goingAway, closing, n := hc.goingAway, hc.closing, len(hc.streams)
	hc.mu.Unlock()
	switch {
	case goingAway || closing:
		return 0, true // past the GOAWAY's last stream: not processed, the client may retry it
	case n >= h2MaxStreams:
		hc.w.rstStream(id, http2.ErrCodeRefusedStream)
		return 0, true
	}
	st := hc.srv.newStream(hc, id)
	if !st.parse(f) {
		hc.srv.streams.Put(st)
		hc.w.rstStream(id, http2.ErrCodeProtocol) // malformed (RFC 9113 8.1.1)
		return 0, true
	}
	hc.mu.Lock()
	hc.streams[id] = st
	if len(hc.streams) == 1 {
		hc.armIdleLocked()
	}
	hc.mu.Unlock()
	hc.handlers.Add(1)
	hc.srv.start(st)
	return 0, true
}

// onTrailers ends a request body with its trailer fields (which are not forwarded: lb sends
// the body on with a length or chunked without trailers).
func (hc *h2Conn) onTrailers(st *h2Stream, f *http2.MetaHeadersFrame) {
	switch {
	case st.reset.Load() || st.remoteClosed():
		hc.resetStream(st, http2.ErrCodeStreamClosed)
	case !f.StreamEnded() || len(f.PseudoFields()) > 0:
		hc.resetStream(st, http2.ErrCodeProtocol) // trailers end the stream, without pseudo-fields
	default:
		if code := st.body.put(nil, 0, true); code != 0 {
			hc.resetStream(st, code)
		}
	}
}

// newStream returns a stream from the pool, reset for id.
func (s *h2Server) newStream(hc *h2Conn, id uint32) *h2Stream {
	st, _ := s.streams.Get().(*h2Stream)
	if st == nil {
		st = &h2Stream{}
		st.body.notify = make(chan struct{}, 1)
	}
	st.hc, st.id = hc, id
	st.fields, st.method, st.target, st.authority = nil, "", "", ""
	st.declared, st.noBody, st.tooLarge, st.begin = -1, false, false, time.Now()
	hc.w.mu.Lock()
	st.sendWindow, st.sendState = hc.w.initialWindow, h2SendOpen
	hc.w.mu.Unlock()
	st.bodyless, st.left, st.aborted, st.failed = false, -1, false, false
	st.aborter = nil
	st.gone.Store(false)
	st.reset.Store(false)
	st.body.reset(st)
	return st
}

// parse checks a request's header block as RFC 9113 8.1-8.3 wants it; false for a malformed
// request. What lb itself refuses (CONNECT, a target or host h1 would not take) is answered
// 400 by the stream's goroutine.
func (st *h2Stream) parse(f *http2.MetaHeadersFrame) bool {
	var scheme string
	path := false
	for _, p := range f.PseudoFields() {
		switch p.Name {
		case ":method":
			st.method = p.Value
		case ":path":
			st.target, path = p.Value, true
		case ":scheme":
			scheme = p.Value
		case ":authority":
			st.authority = p.Value
		default:
			return false // :protocol (lb offers no extended CONNECT), or a response's :status
		}
	}
	if f.Truncated {
		// Longer than max_header_bytes (HPACK stopped giving fields): answered 431.
		st.tooLarge, st.noBody, st.body.ended = true, f.StreamEnded(), f.StreamEnded()
		return true
	}
	if st.method == "" || st.method != "CONNECT" && (scheme == "" || !path || st.target == "") {
		return false
	}
	for _, hf := range f.RegularFields() {
		switch {
		case isConnectionSpecific(hf.Name):
			return false
		case hf.Name == "te" && hf.Value != "trailers":
			return false
		case hf.Name == "expect" && strings.EqualFold(hf.Value, "100-continue"):
			st.body.expect = !f.StreamEnded()
		case hf.Name == "content-length":
			n, ok := parseContentLength(hf.Value)
			if !ok || st.declared >= 0 && n != st.declared {
				return false
			}
			st.declared = n
		}
	}
	st.fields = f.RegularFields()
	st.noBody = f.StreamEnded()
	if st.noBody && st.declared > 0 {
		return false // a length that no DATA can match
	}
	st.body.declared = st.declared
	st.body.ended = st.noBody
	return true
}

// parseContentLength parses a content-length value: digits only.
func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

// continue100 answers a client that expects 100-continue before it sends its body.
func (st *h2Stream) continue100() error {
	return st.check(st.hc.w.headers(st, []hpack.HeaderField{{Name: ":status", Value: "100"}}, false))
}

// remoteClosed reports whether the client ended its side of the stream (END_STREAM).
func (st *h2Stream) remoteClosed() bool {
	st.body.mu.Lock()
	defer st.body.mu.Unlock()
	return st.body.ended
}

// clientGone records that the client reset the stream or the connection ended: the exchange
// in progress is aborted and the body read fails.
func (st *h2Stream) clientGone() {
	st.watchMu.Lock()
	st.gone.Store(true)
	if st.aborter != nil {
		st.aborter.Abort()
	}
	st.watchMu.Unlock()
	st.body.fail(errClientGone)
}

// run forwards the request and ends the stream.
func (st *h2Stream) run() {
	hc := st.hc
	defer hc.handlers.Done()
	s := hc.srv
	set := s.l.settings()
	st.body.timeout = set.BodyReadTimeout
	out := st.forward(set)
	s.l.served.Add(1)
	st.end(out)
	hc.endStream(st)
	st.hc, st.fields, st.aborter = nil, nil, nil
	st.req = balancer.Request{}
	s.streams.Put(st)
}

// forward sends the request through the forwarding loop, or answers 400 for one lb refuses.
func (st *h2Stream) forward(set Settings) balancer.Outcome {
	hc, p := st.hc, st.hc.srv.proxy
	target, ok := h2Target(st.method, st.target)
	host := st.authority
	if host == "" {
		for _, hf := range st.fields {
			if hf.Name == "host" {
				host = hf.Value
				break
			}
		}
	}
	if st.tooLarge {
		hc.srv.l.opts.Logger.Info("request refused", "listener", hc.srv.l.opts.Name, "remote", hc.c.RemoteAddr().String(), "reason", reasonHeadTooLarge, "status", 431)
		balancer.WriteError(st, 431, balancer.ErrorMessage(431), "", set.HSTS, st.method == "HEAD")
		return balancer.Outcome{Code: 431}
	}
	if !ok || st.method == "CONNECT" || !validMethod(st.method) || host == "" || !validHost(host) {
		hc.srv.l.opts.Logger.Info("request refused", "listener", hc.srv.l.opts.Name, "remote", hc.c.RemoteAddr().String(), "reason", "bad request", "status", 400)
		balancer.WriteError(st, 400, balancer.ErrorMessage(400), "", set.HSTS, st.method == "HEAD")
		return balancer.Outcome{Code: 400}
	}
	st.outgoing.Begin(p, hc.peer, []byte(st.method), []byte(target), []byte(host), false, nil)
	st.cookies.Reset()
	for _, hf := range st.fields {
		switch hf.Name {
		case "host":
		case "cookie":
			joinCookies(&st.cookies, hf.Value)
		default:
			st.outgoing.Header(hf.Name, hf.Value)
		}
	}
	if st.cookies.Len() > 0 {
		st.outgoing.Header("cookie", st.cookies.String())
	}
	if st.outgoing.Invalid() {
		balancer.WriteError(st, 400, balancer.ErrorMessage(400), "", set.HSTS, st.method == "HEAD")
		return balancer.Outcome{Code: 400}
	}
	path := target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	st.req = balancer.Request{Method: st.method, Path: pathString([]byte(path)), HSTS: set.HSTS, Begin: st.begin}
	st.outgoing.Finish(p, &st.req, true)
	st.req.BodySrc = &st.body
	switch {
	case st.noBody:
		st.req.BodyLength = 0
	case st.declared >= 0:
		st.req.BodyLength = st.declared
	default:
		st.req.BodyLength = -1
	}
	st.req.Framed = !st.noBody || st.declared >= 0
	return p.Forward(&st.fw, &st.req, st)
}

// end finishes the stream on lb's side after the forwarding loop: an answer that did not
// end is reset, and a request body the client is still sending is refused with NO_ERROR
// (RFC 9113 8.1) once the answer is complete.
func (st *h2Stream) end(out balancer.Outcome) {
	hc := st.hc
	hc.w.mu.Lock()
	state := st.sendState
	hc.w.mu.Unlock()
	switch {
	case state == h2SendOpen && (out.Gone || st.gone.Load()):
		hc.resetStream(st, http2.ErrCodeCancel)
	case state == h2SendOpen:
		hc.resetStream(st, http2.ErrCodeInternal) // the backend broke the answer off
	case state == h2SendEnded && !st.remoteClosed():
		hc.resetStream(st, http2.ErrCodeNo)
	}
	if n := st.body.discard(); n > 0 {
		hc.consumed(n)
	}
	if out.Code != 0 && hc.srv.l.closeAfterAnswer() {
		hc.startGoAway()
	}
}

// h2Target returns the target a backend gets from :path, as originTarget does for net/http.
func h2Target(method, t string) (string, bool) {
	if method == "CONNECT" {
		return "", true
	}
	if t == "*" {
		return t, method == "OPTIONS"
	}
	return t, t != "" && t[0] == '/' && validOrigin(t)
}

// Watch makes a the exchange to abort if the client goes away; false if it is gone already.
func (st *h2Stream) Watch(a balancer.Aborter) bool {
	st.watchMu.Lock()
	defer st.watchMu.Unlock()
	if st.gone.Load() {
		return false
	}
	st.aborter = a
	return true
}

// Unwatch ends Watch.
func (st *h2Stream) Unwatch() {
	st.watchMu.Lock()
	st.aborter = nil
	st.watchMu.Unlock()
}

// Gone reports whether the client went away.
func (st *h2Stream) Gone() bool { return st.failed || st.gone.Load() }

// Abort has the stream reset once the forwarding loop returns.
func (st *h2Stream) Abort() { st.aborted = true }

// Upgrade fails: HTTP/2 has no protocol switch.
func (st *h2Stream) Upgrade() (net.Conn, []byte, error) {
	return nil, nil, errors.New("no protocol switch on HTTP/2")
}

// Flush is a no-op: every frame is written as soon as the goroutines ready to write have.
func (st *h2Stream) Flush() error { return st.err() }

func (st *h2Stream) err() error {
	if st.failed || st.gone.Load() {
		return errClientGone
	}
	return nil
}
