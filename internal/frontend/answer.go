package frontend

import (
	"errors"
	"net"
	"strconv"
	"time"

	"outrigger/internal/balancer"
	"outrigger/internal/h1"
)

// This file is the client side of lb's loop as the forwarding loop sees it
// (balancer.Client): how an answer goes to an HTTP/1 client.

// answer is the state of the answer to the current request.
type answer struct {
	head     bool // an answer to HEAD: no body
	minor    int  // the client's HTTP minor version
	close    bool // the connection closes after this answer
	chunked  bool // the body goes to the client chunked
	bodyless bool // no body goes to the client
}

// outFlushSize is how much answer data is gathered before it is written to the client even
// though more is at hand.
const outFlushSize = 32 << 10

// errClientGone is a write to a client that failed (or went past write_timeout).
var errClientGone = errors.New("client gone")

// Interim writes an interim (1xx) answer and sends it at once.
func (cc *conn) Interim(h *balancer.ResponseHead) error {
	if cc.ans.minor == 0 {
		return nil // HTTP/1.0 has no interim answers
	}
	cc.out = appendHead(cc.out, h, headFraming{minor: 1, length: -1, interim: true}, &cc.lp.dates)
	return cc.flush()
}

// Start writes the head of the answer, with the framing the client gets: the backend's
// length, else chunked for HTTP/1.1 and until the close for HTTP/1.0.
func (cc *conn) Start(h *balancer.ResponseHead) error {
	a := &cc.ans
	a.bodyless = h.Bodyless || a.head
	f := headFraming{minor: a.minor, length: -1, upgrade: h.Code == 101}
	switch {
	case f.upgrade:
	case a.bodyless:
		if h.Length >= 0 && h.Code != 204 {
			f.length = h.Length // what a GET would have had (HEAD, 304)
		}
	case h.Length >= 0:
		f.length = h.Length
	case a.minor == 1:
		f.chunked, a.chunked = true, true
	default:
		a.close = true // the end of the body is the end of the connection
	}
	if cc.lp.closing.Load() || !cc.body.done || !f.upgrade && cc.lp.l.closeAfterAnswer() {
		// shutting down, the rest of the request body will not be read, or lb asks
		// (stopping, no backend healthy: Options.CloseAfterAnswer)
		a.close = true
	}
	f.close = a.close
	f.keepAlive = !a.close && a.minor == 0
	cc.out = appendHead(cc.out, h, f, &cc.lp.dates)
	if len(cc.out) >= outFlushSize {
		return cc.flush()
	}
	return nil
}

// Write passes body bytes on, chunked if the client gets them so.
func (cc *conn) Write(p []byte) error {
	if cc.ans.bodyless || len(p) == 0 {
		return nil
	}
	if cc.ans.chunked {
		cc.out = strconv.AppendInt(cc.out, int64(len(p)), 16)
		cc.out = append(cc.out, "\r\n"...)
	}
	if len(cc.out)+len(p) > outFlushSize {
		if err := cc.flush(); err != nil {
			return err
		}
		if err := cc.writeNow(p); err != nil {
			return err
		}
	} else {
		cc.out = append(cc.out, p...)
	}
	if cc.ans.chunked {
		cc.out = append(cc.out, "\r\n"...)
	}
	if len(cc.out) >= outFlushSize {
		return cc.flush()
	}
	return nil
}

// Flush writes what the answer gathered so far.
func (cc *conn) Flush() error { return cc.flush() }

// Finish ends a chunked body with its trailer fields.
func (cc *conn) Finish(trailers []h1.Field) error {
	if !cc.ans.chunked || cc.ans.bodyless {
		return nil
	}
	cc.out = append(cc.out, "0\r\n"...)
	for i := range trailers {
		cc.out = append(cc.out, trailers[i].Line...)
	}
	cc.out = append(cc.out, "\r\n"...)
	return nil
}

// Abort sends what there is of an answer the backend broke off; the connection then closes,
// so the client sees it cut.
func (cc *conn) Abort() {
	cc.ans.close = true
	_ = cc.flush()
}

// Upgrade hands over the connection after a 101: the watch stops, the 101 goes out, the
// deadlines are lifted, and the bytes the client sent after its request come along.
func (cc *conn) Upgrade() (net.Conn, []byte, error) {
	cc.disarm()
	if err := cc.flush(); err != nil {
		return nil, nil, err
	}
	_ = cc.c.SetDeadline(time.Time{})
	buffered := append([]byte(nil), cc.rd.Buffered()...)
	cc.rd.Discard(len(buffered))
	return cc.c, buffered, nil
}

// flush writes the pending answer bytes to the client.
func (cc *conn) flush() error {
	if len(cc.out) == 0 {
		return nil
	}
	err := cc.writeNow(cc.out)
	cc.out = cc.out[:0]
	return err
}

// writeNow writes p to the client within write_timeout; a failure means the client is gone.
func (cc *conn) writeNow(p []byte) error {
	if wt := cc.set.WriteTimeout; wt > 0 {
		_ = cc.c.SetWriteDeadline(time.Now().Add(wt))
	}
	if _, err := cc.c.Write(p); err != nil {
		cc.watch.clientGone()
		return errClientGone
	}
	return nil
}

// headFraming is how an answer's head frames its body for the client.
type headFraming struct {
	minor     int   // the client's HTTP minor version
	length    int64 // Content-Length, or -1 for none
	chunked   bool  // Transfer-Encoding: chunked
	close     bool  // Connection: close
	keepAlive bool  // Connection: keep-alive (an HTTP/1.0 client that keeps the connection)
	upgrade   bool  // Connection: Upgrade (a 101)
	interim   bool  // a 1xx: no Date, no framing
}

// appendHead appends an answer's head as an HTTP/1 client gets it: the status line net/http
// would write, the fields the table let through, X-Request-Id, Strict-Transport-Security,
// a Date if the backend sent none, then the framing and Connection fields.
func appendHead(dst []byte, h *balancer.ResponseHead, f headFraming, dates *h1.DateCache) []byte {
	dst = h1.AppendStatusLine(dst, f.minor, h.Code)
	for i := range h.Fields {
		dst = append(dst, h.Fields[i].Line...)
	}
	if h.RequestID != "" {
		dst = appendField(dst, "X-Request-Id: ", h.RequestID)
	}
	if h.HSTS != "" {
		dst = appendField(dst, "Strict-Transport-Security: ", h.HSTS)
	}
	if !f.interim && !h.HasDate {
		dst = append(dst, "Date: "...)
		dst = dates.Append(dst, time.Now())
		dst = append(dst, "\r\n"...)
	}
	switch {
	case f.chunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case f.length >= 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, f.length, 10)
		dst = append(dst, "\r\n"...)
	}
	switch {
	case f.upgrade:
		dst = append(dst, "Connection: Upgrade\r\n"...)
	case f.close && !f.interim && f.minor == 1: // HTTP/1.0 closes unless it says keep-alive
		dst = append(dst, "Connection: close\r\n"...)
	case f.keepAlive:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// appendField appends "name: value\r\n" (name includes the colon and space).
func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}
