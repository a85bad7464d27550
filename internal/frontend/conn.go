package frontend

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"outrigger/internal/balancer"
	"outrigger/internal/h1"
)

// conn is one client connection on lb's loop, with everything its requests reuse: the read
// buffer and the parsed head, the request as the forwarding loop takes it, the body reader,
// the answer's state and the watch for a client that goes away.
type conn struct {
	lp    *loop
	c     net.Conn
	rd    *h1.Reader
	tls   bool
	peer  netip.Addr
	set   Settings // as read for the current request
	state atomic.Int32

	req      h1.Request        // the head being served
	breq     balancer.Request  // the request as the forwarding loop takes it
	outgoing balancer.Outgoing // builds breq's head
	fw       balancer.Forwarding
	connVals []byte // the Connection field values, when they name fields
	body     bodyReader
	ans      answer // the answer's state (h1client.go)
	out      []byte // answer bytes not yet written to the client
	watch    watcher
	// linger is set when the connection closes with client bytes left unread (a refused
	// head, a body not read to its end): see lingerClose.
	linger bool
}

// aLongTimeAgo is a deadline in the past: it unblocks any read at once.
var aLongTimeAgo = time.Unix(1, 0)

// serve runs the connection's request loop until it is to be closed.
func (cc *conn) serve(headDeadline time.Time) {
	cc.set = cc.lp.l.settings()
	_ = cc.c.SetReadDeadline(headDeadline) // the first head, from the accept
	for first := true; ; first = false {
		if !first && !cc.awaitRequest() {
			return
		}
		refusal, err := cc.readHead()
		if err != nil {
			return // EOF, reset or read_header_timeout: close, as net/http does
		}
		if refusal != nil {
			cc.refuse(refusal)
			return
		}
		if !cc.state.CompareAndSwap(connIdle, connBusy) {
			return // shutdown took it while its head arrived
		}
		if !cc.serveRequest() {
			return
		}
		cc.state.Store(connIdle)
		if cc.lp.closing.Load() {
			return
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
// head read_header_timeout. False if the client closed, timed out, or shutdown woke it.
func (cc *conn) awaitRequest() bool {
	cc.set = cc.lp.l.settings()
	if len(cc.rd.Buffered()) > 0 { // pipelined: the next request is here already
		deadline(cc.c, cc.set.ReadHeaderTimeout)
		return true
	}
	deadline(cc.c, cc.set.IdleTimeout)
	if err := cc.rd.Fill(cc.rd.Size()); err != nil {
		return false
	}
	if cc.state.Load() != connIdle {
		return false
	}
	deadline(cc.c, cc.set.ReadHeaderTimeout)
	return true
}

// wakeIfIdle closes the connection for shutdown if it is idle (waiting for or reading a head).
func (cc *conn) wakeIfIdle() {
	if cc.state.CompareAndSwap(connIdle, connClosed) {
		_ = cc.c.SetReadDeadline(aLongTimeAgo)
	}
}

// cut closes the connection at once, aborting its backend I/O.
func (cc *conn) cut() {
	cc.state.Store(connClosed)
	cc.watch.clientGone()
	_ = cc.c.Close()
}

// errHeadTooLarge is a head longer than max_header_bytes.
var errHeadTooLarge = &h1.Error{Status: 431, Reason: reasonHeadTooLarge}

// reasonHeadTooLarge is the log's reason for a head over max_header_bytes.
const reasonHeadTooLarge = "header-too-large"

// readHead reads until a whole request head is buffered and parsed into cc.req. It returns
// the refusal of a head h1's rules (or max_header_bytes) refuse, or the connection's error.
// The head is parsed when its request line is complete (a bad one is refused at once) and
// whenever what arrived may end it, so that a head sent a byte at a time costs no more than
// one sent at once.
func (cc *conn) readHead() (*h1.Error, error) {
	limit := cc.set.MaxHeaderBytes
	from, lineSeen := 0, false
	for {
		buf := cc.rd.Buffered()
		check := h1.HeadEnd(buf, from)
		if !lineSeen && bytes.IndexByte(buf[from:], '\n') >= 0 {
			lineSeen, check = true, true
		}
		if check {
			switch err := h1.ParseRequest(buf, &cc.req); {
			case err == nil && cc.req.HeadLen > limit:
				return errHeadTooLarge, nil
			case err == nil:
				return nil, nil
			case err != h1.ErrIncomplete:
				var e *h1.Error
				if errors.As(err, &e) {
					return e, nil
				}
				return nil, err
			}
		}
		if len(buf) > limit {
			return errHeadTooLarge, nil
		}
		from = max(len(buf)-2, 0)
		if err := cc.rd.Fill(limit + 1); err != nil {
			if errors.Is(err, h1.ErrHeadTooLarge) {
				return errHeadTooLarge, nil
			}
			return nil, err
		}
	}
}

// refuse answers a refused head with its status and lb's error body; the connection closes.
func (cc *conn) refuse(e *h1.Error) {
	cc.lp.l.refused(cc.c, e.Reason, e.Status)
	cc.ans = answer{minor: 1, close: true}
	hsts := ""
	if cc.tls {
		hsts = cc.set.HSTS
	}
	balancer.WriteError(cc, e.Status, balancer.ErrorMessage(e.Status), "", hsts, false)
	_ = cc.flush()
	cc.linger = true
}

// serveRequest serves the request whose head is in cc.req and reports whether the
// connection may carry another.
func (cc *conn) serveRequest() bool {
	r := &cc.req
	if r.Form == h1.AsteriskForm {
		return cc.serveOptionsAsterisk()
	}
	p := cc.lp.proxy
	cc.breq = balancer.Request{Method: methodString(r.Method), Path: pathString(r.Path), Begin: time.Now()}
	var connVals []byte
	if r.ConnectionNames {
		connVals = cc.connectionValues()
	}
	cc.outgoing.Begin(p, cc.peer, r.Method, r.Origin, r.Host, r.Upgrade != nil, connVals)
	for i := range r.Fields {
		cc.outgoing.Field(&r.Fields[i])
	}
	cc.outgoing.Finish(p, &cc.breq, cc.tls)
	if r.Upgrade != nil {
		cc.breq.Upgrade = string(r.Upgrade)
	}
	if cc.tls {
		cc.breq.HSTS = cc.set.HSTS
	}
	cc.ans = answer{head: cc.breq.Method == "HEAD", minor: r.Minor, close: r.Close}
	cc.body.reset(cc, r)
	cc.breq.BodySrc, cc.breq.BodyLength, cc.breq.Framed = &cc.body, cc.body.length(), r.HasContentLength || r.Chunked
	cc.rd.Discard(r.HeadLen) // r's slices are not used from here on
	if cc.body.done {
		cc.arm()
	}
	out := p.Forward(&cc.fw, &cc.breq, cc)
	cc.disarm()
	cc.lp.l.served.Add(1)
	switch {
	case out.Upgraded:
		return false // the tunnel is over, and closed
	case out.Gone:
		cc.out = cc.out[:0]
		return false
	}
	// The end of the answer goes out last, as net/http's final flush after the handler: a
	// client that has it sees the request counted, logged and its backend connection back
	// in the idle pool (or closed).
	if out.Unread || !cc.body.done {
		cc.linger = true
	}
	if cc.flush() != nil || out.Broken || cc.linger {
		return false
	}
	return !cc.ans.close && !cc.watch.isGone()
}

// serveOptionsAsterisk answers "OPTIONS *" itself, as net/http's server does: it asks about
// lb, not about a resource of the backends.
func (cc *conn) serveOptionsAsterisk() bool {
	r := &cc.req
	cc.ans = answer{minor: r.Minor, close: r.Close || r.HasBody()}
	cc.rd.Discard(r.HeadLen)
	h := balancer.ResponseHead{Code: 200, Length: 0}
	cc.out = appendHead(cc.out, &h, headFraming{minor: r.Minor, length: 0, close: cc.ans.close,
		keepAlive: !cc.ans.close && r.Minor == 0}, &cc.lp.dates)
	cc.lp.l.served.Add(1)
	cc.linger = r.HasBody()
	return cc.flush() == nil && !cc.ans.close
}

// connectionValues returns the request's Connection values joined by commas.
func (cc *conn) connectionValues() []byte {
	v := cc.connVals[:0]
	for i := range cc.req.Fields {
		if f := &cc.req.Fields[i]; f.Kind == h1.KindConnection {
			v = append(append(v, f.Value...), ',')
		}
	}
	cc.connVals = v
	return v
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
