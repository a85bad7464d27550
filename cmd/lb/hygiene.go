package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
)

// net/http accepts a request with both Content-Length and Transfer-Encoding
// (it drops Content-Length, as RFC 9112 allows an intermediary to). DESIGN
// wants such requests refused, so the public HTTP/1 listener wraps every
// connection in a hygieneConn: it follows the framing of the client's byte
// stream, holds each request head until it is complete, and replaces a head
// with both headers (or with differing Content-Length values) by a request
// line net/http refuses, so that the server answers 400 and closes the
// connection. Everything else passes through untouched.

// Scanner states.
const (
	stHead = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
	stPass     // opaque from here on (upgrade, HTTP/2 preface, unparsable framing)
	stRejected // a head was replaced; the connection is finished
)

// maxFramingLine bounds a chunk-size or trailer line the scanner keeps.
const maxFramingLine = 16 << 10

// hygieneConn is a net.Conn whose reads are checked as described above.
type hygieneConn struct {
	net.Conn
	maxHead  int                  // a head longer than this passes through (net/http answers 431)
	onReject func(reason string)  // called once when a head is refused
	tlsState *tls.ConnectionState // set when the frontend terminated TLS

	state     int
	remaining int64  // bytes left in a body or chunk
	pending   []byte // a head, chunk-size line or trailer being collected
	out       []byte // checked bytes not yet handed to the reader
	buf       []byte // read buffer
}

func newHygieneConn(c net.Conn, maxHead int, onReject func(string)) *hygieneConn {
	return &hygieneConn{Conn: c, maxHead: maxHead, onReject: onReject, buf: make([]byte, 16<<10)}
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *hygieneConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Read hands out checked bytes. A read error (including a deadline set by the
// server) is returned as is and never loses a partly collected head.
func (c *hygieneConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.state == stRejected {
			return 0, io.EOF
		}
		if c.state == stPass && len(c.pending) == 0 {
			return c.Conn.Read(p)
		}
		n, err := c.Conn.Read(c.buf)
		if n > 0 {
			c.feed(c.buf[:n])
		}
		if err != nil {
			if len(c.out) > 0 {
				break // hand out what we have; the error comes back on the next read
			}
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// feed runs b through the framing state machine, appending what may pass to c.out.
func (c *hygieneConn) feed(b []byte) {
	for len(b) > 0 {
		switch c.state {
		case stPass:
			c.out = append(c.out, b...)
			return
		case stRejected:
			return
		case stBody, stChunkData:
			n := int64(len(b))
			if n > c.remaining {
				n = c.remaining
			}
			c.out = append(c.out, b[:n]...)
			b = b[n:]
			c.remaining -= n
			if c.remaining == 0 {
				if c.state == stBody {
					c.state = stHead
				} else {
					c.state = stChunkEnd
				}
			}
		case stHead:
			b = c.collectHead(b)
		case stChunkSize, stChunkEnd, stTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.pending = append(c.pending, b...)
				c.out = append(c.out, b...)
				if len(c.pending) > maxFramingLine {
					c.state, c.pending = stPass, nil
				}
				return
			}
			line := append(c.pending, b[:i]...)
			c.out = append(c.out, b[:i+1]...)
			b = b[i+1:]
			c.pending = nil
			c.framingLine(bytes.TrimRight(line, "\r"))
		}
	}
}

// framingLine handles one complete chunk-size, chunk-end or trailer line.
func (c *hygieneConn) framingLine(line []byte) {
	switch c.state {
	case stChunkEnd:
		c.state = stChunkSize
	case stChunkSize:
		s := string(line)
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		size, err := strconv.ParseInt(strings.TrimSpace(s), 16, 64)
		switch {
		case err != nil || size < 0:
			c.state = stPass // net/http refuses it; nothing left to check
		case size == 0:
			c.state = stTrailer
		default:
			c.state, c.remaining = stChunkData, size
		}
	case stTrailer:
		if len(line) == 0 {
			c.state = stHead
		}
	}
}

// collectHead gathers a request head; once complete it is checked and
// released (or replaced). It returns the bytes after the head.
func (c *hygieneConn) collectHead(b []byte) []byte {
	start := len(c.pending) - 3 // the end marker may straddle reads
	if start < 0 {
		start = 0
	}
	c.pending = append(c.pending, b...)
	end := headEnd(c.pending, start)
	if end < 0 {
		if len(c.pending) > c.maxHead {
			c.out = append(c.out, c.pending...)
			c.state, c.pending = stPass, nil
		}
		return nil
	}
	head := c.pending[:end]
	rest := c.pending[end:]
	c.pending = nil
	if reason := c.checkHead(head); reason != "" {
		// A request line without spaces: net/http answers
		// "400 Bad Request: malformed HTTP request" and closes.
		c.out = append(c.out, "refused:"+reason+"\r\n\r\n"...)
		c.state = stRejected
		if c.onReject != nil {
			c.onReject(reason)
		}
		return nil
	}
	c.out = append(c.out, head...)
	// rest aliases pending's array, which is no longer used.
	return rest
}

// headEnd returns the index just past the blank line ending a head, or -1.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// checkHead sets the framing state for the body that follows head and
// returns a reason when the head must be refused.
func (c *hygieneConn) checkHead(head []byte) string {
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	reqLine := lines[0]
	if strings.HasPrefix(reqLine, "PRI * HTTP/2") {
		c.state = stPass
		return ""
	}
	var cls []string
	var te, upgrade bool
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			for _, v := range strings.Split(value, ",") {
				cls = append(cls, strings.TrimSpace(v))
			}
		case "transfer-encoding":
			te = true
		case "upgrade":
			upgrade = true
		}
	}
	if te && len(cls) > 0 {
		return "content-length-with-transfer-encoding"
	}
	for _, v := range cls[min(1, len(cls)):] {
		if v != cls[0] {
			return "differing-content-length"
		}
	}
	method, _, _ := strings.Cut(reqLine, " ")
	switch {
	case upgrade || method == "CONNECT" || strings.HasSuffix(reqLine, "HTTP/1.0"):
		// Bytes after an upgrade may be another protocol; HTTP/1.0 ignores
		// Transfer-Encoding. Neither is checked further.
		c.state = stPass
	case te:
		c.state = stChunkSize // net/http accepts only "chunked" and refuses the rest
	case len(cls) > 0:
		n, err := strconv.ParseInt(cls[0], 10, 64)
		if err != nil || n < 0 {
			c.state = stPass // net/http refuses it
		} else if n > 0 {
			c.state, c.remaining = stBody, n
		}
	}
	return ""
}
