package frontend

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"outrigger/internal/balancer"
	"outrigger/internal/h1"
)

// netHTTPClient is the client side of a request served by net/http, as the forwarding loop
// sees it: it writes the answer through the ResponseWriter, each write within write_timeout,
// and hijacks the connection for a 101.
type netHTTPClient struct {
	h            *proxyHandler
	w            http.ResponseWriter
	rc           *http.ResponseController
	r            *http.Request
	writeTimeout time.Duration
	// writeDeadline is the write deadline set last: it is moved only once a quarter of
	// write_timeout has passed, since moving an HTTP/2 stream's costs a message to its
	// connection's goroutine (a blocked write is cut between 3/4 and all of write_timeout).
	writeDeadline time.Time

	stop    func() bool // ends the Watch
	failed  bool        // a write to the client failed
	aborted bool        // the backend broke the body off: the handler aborts

	conn net.Conn // hijacked for a 101
	brw  *bufio.ReadWriter
}

// Watch makes a the exchange to abort if the request's context ends (the client went away).
func (c *netHTTPClient) Watch(a balancer.Aborter) bool {
	ctx := c.r.Context()
	if ctx.Err() != nil {
		return false
	}
	c.stop = context.AfterFunc(ctx, a.Abort)
	return true
}

// Unwatch ends Watch.
func (c *netHTTPClient) Unwatch() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

// Gone reports whether the client went away.
func (c *netHTTPClient) Gone() bool { return c.failed || c.r.Context().Err() != nil }

// Interim sends an interim answer (not to an HTTP/1.0 client, which knows none).
func (c *netHTTPClient) Interim(h *balancer.ResponseHead) error {
	if c.r.ProtoMajor == 1 && c.r.ProtoMinor == 0 {
		return nil
	}
	hdr := c.w.Header()
	c.setFields(hdr, h)
	c.deadline()
	c.w.WriteHeader(h.Code)
	clear(hdr) // the interim fields are not the final answer's
	return c.err()
}

// Start writes the head of the answer; net/http frames the body.
func (c *netHTTPClient) Start(h *balancer.ResponseHead) error {
	if h.Code == http.StatusSwitchingProtocols {
		return c.switchProtocols(h)
	}
	hdr := c.w.Header()
	c.setFields(hdr, h)
	if h.Length >= 0 {
		hdr["Content-Length"] = []string{strconv.FormatInt(h.Length, 10)}
	}
	if c.h.l.closeAfterAnswer() {
		// net/http closes an HTTP/1 connection after this answer, and sends an HTTP/2
		// one a GOAWAY (the field itself is not sent on HTTP/2).
		hdr["Connection"] = []string{"close"}
	}
	c.deadline()
	c.w.WriteHeader(h.Code)
	return c.err()
}

// setFields puts the answer's fields in hdr, then lb's own. The names of the usual fields
// are constants, and every value is a piece of one string, so a head costs few allocations.
func (c *netHTTPClient) setFields(hdr http.Header, h *balancer.ResponseHead) {
	n := 0
	for i := range h.Fields {
		n += len(h.Fields[i].Value)
	}
	var values string
	if n > 0 {
		buf := make([]byte, 0, n)
		for i := range h.Fields {
			buf = append(buf, h.Fields[i].Value...)
		}
		values = string(buf)
	}
	at := 0
	for i := range h.Fields {
		f := &h.Fields[i]
		k := canonicalName(f)
		v := values[at : at+len(f.Value)]
		at += len(f.Value)
		if old, ok := hdr[k]; ok {
			hdr[k] = append(old, v)
		} else {
			hdr[k] = []string{v}
		}
	}
	if h.RequestID != "" {
		hdr["X-Request-Id"] = []string{h.RequestID}
	}
	if h.HSTS != "" {
		hdr["Strict-Transport-Security"] = []string{h.HSTS}
	}
}

// canonicalName is f's name as net/http's header map keys it.
func canonicalName(f *h1.Field) string {
	if k := f.Kind.HeaderKey(); k != "" {
		return k
	}
	switch string(f.Name) { // compared without allocating
	case "Content-Type":
		return "Content-Type"
	case "Cache-Control":
		return "Cache-Control"
	case "Etag", "ETag":
		return "Etag"
	case "Last-Modified":
		return "Last-Modified"
	case "Set-Cookie":
		return "Set-Cookie"
	case "Location":
		return "Location"
	case "Vary":
		return "Vary"
	case "X-Instance":
		return "X-Instance"
	}
	return textproto.CanonicalMIMEHeaderKey(string(f.Name))
}

// switchProtocols takes the HTTP/1 connection over from net/http and writes the 101 itself,
// then tells the gate that everything passes from now on.
func (c *netHTTPClient) switchProtocols(h *balancer.ResponseHead) error {
	conn, brw, err := c.rc.Hijack()
	if err != nil {
		c.failed = true
		return err
	}
	c.conn, c.brw = conn, brw
	head := appendHead(nil, h, headFraming{minor: 1, length: -1, upgrade: true}, &c.h.dates)
	_ = conn.SetDeadline(time.Time{})
	if _, err := conn.Write(head); err != nil {
		c.failed = true
		return err
	}
	if g, ok := conn.(*gate); ok {
		g.passThrough()
	}
	return nil
}

// Write passes body bytes on.
func (c *netHTTPClient) Write(p []byte) error {
	c.deadline()
	if _, err := c.w.Write(p); err != nil {
		c.failed = true
		return err
	}
	return nil
}

// Flush sends what was written so far.
func (c *netHTTPClient) Flush() error {
	c.deadline()
	if err := c.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		c.failed = true
		return err
	}
	return nil
}

// Finish sets the trailer fields of a chunked body.
func (c *netHTTPClient) Finish(trailers []h1.Field) error {
	hdr := c.w.Header()
	for i := range trailers {
		hdr.Add(http.TrailerPrefix+string(trailers[i].Name), string(trailers[i].Value))
	}
	return nil
}

// Abort has the handler abort the answer once the forwarding loop returns.
func (c *netHTTPClient) Abort() { c.aborted = true }

// Upgrade returns the connection hijacked by a 101 and what net/http had read of it.
func (c *netHTTPClient) Upgrade() (net.Conn, []byte, error) {
	if c.conn == nil {
		return nil, nil, errors.New("no connection to upgrade")
	}
	n := c.brw.Reader.Buffered()
	buffered, _ := c.brw.Reader.Peek(n)
	return c.conn, append([]byte(nil), buffered...), nil
}

// deadline gives the next write (about) write_timeout.
func (c *netHTTPClient) deadline() {
	if c.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if c.writeDeadline.Sub(now) > c.writeTimeout*3/4 {
		return
	}
	c.writeDeadline = now.Add(c.writeTimeout)
	_ = c.rc.SetWriteDeadline(c.writeDeadline)
}

// err reports a failed write (WriteHeader reports none of its own).
func (c *netHTTPClient) err() error {
	if c.failed {
		return errClientGone
	}
	return nil
}
