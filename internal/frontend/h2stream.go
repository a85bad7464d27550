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
	"outrigger/internal/h1"
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

	watchMu   sync.Mutex // orders an abort against the attempt switching backend connections
	aborter   balancer.Aborter
	gone      atomic.Bool // the client reset the stream, or the connection ended
	reset     atomic.Bool // a RST_STREAM went either way: the stream is closed
	resetByLB atomic.Bool // lb sent it: the client's frames may still come, and are discarded

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
	if !ok || st.method == "CONNECT" || !h1.ValidFieldName(st.method) || host == "" || !h1.ValidHost(host) {
		hc.srv.l.opts.Logger.Info("request refused", "listener", hc.srv.l.opts.Name, "remote", hc.c.RemoteAddr().String(), "reason", "bad request", "status", 400)
		balancer.WriteError(st, 400, balancer.ErrorMessage(400), "", set.HSTS, st.method == "HEAD")
		return balancer.Outcome{Code: 400}
	}
	if target == "*" {
		// OPTIONS * asks about lb, not a backend's resource: answered by lb, as its HTTP/1
		// loop and net/http do.
		h := balancer.ResponseHead{Code: 200, Length: 0, HSTS: set.HSTS}
		if st.Start(&h) == nil {
			_ = st.Finish(nil)
		}
		return balancer.Outcome{Code: 200}
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
