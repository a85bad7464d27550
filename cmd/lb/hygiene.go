package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
)

// net/http accepts a request with both Content-Length and Transfer-Encoding
// (it drops Content-Length, as RFC 9112 allows an intermediary to). DESIGN
// wants such requests refused, so the public HTTP/1 listener wraps every
// connection in a hygieneConn: it follows the framing of the client's byte
// stream, holds each request head until it is complete, and replaces a head
// with both headers (or with differing Content-Length values) by a request
// line net/http refuses, so that the server answers 400 and closes the
// connection. A head longer than max_header_bytes is replaced by a header
// line without end, so that net/http answers 431 and closes: net/http alone
// lets heads through up to about 8 KiB past its MaxHeaderBytes. Everything
// else passes through untouched.

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
	stTooLarge // a head was too long: an endless header line follows
)

// Reasons a head is refused, as logged.
const (
	reasonCLWithTE        = "content-length-with-transfer-encoding"
	reasonDifferingCL     = "differing-content-length"
	reasonHeadTooLarge    = "header-too-large"
	tooLargeHeadReplacing = "GET / HTTP/1.1\r\nX-Too-Large: "
)

// maxFramingLine bounds a chunk-size or trailer line the scanner keeps.
const maxFramingLine = 16 << 10

// hygieneConn is a net.Conn whose reads are checked as described above.
type hygieneConn struct {
	net.Conn
	maxHead  int                             // a head longer than this is refused with 431
	onReject func(reason string, status int) // called once when a head is refused
	tlsState *tls.ConnectionState            // set when the frontend terminated TLS

	state     int
	remaining int64  // bytes left in a body or chunk
	pending   []byte // a head, chunk-size line or trailer being collected
	out       []byte // checked bytes; out[outPos:] not yet handed to the reader
	outPos    int
	small     []byte // read buffer for reads into a short p (made on first use)

	// While feeding a read made straight into the caller's buffer, the bytes that pass
	// unchanged stay where they are: src is what was read, src[:passed] has passed, and
	// inPlace turns false (copying src[:passed] to out) once something else must be emitted.
	src     []byte
	passed  int
	inPlace bool
}

// minDirectRead is the smallest caller buffer the connection goes on reading into while it
// collects a head; with a shorter one (net/http's one-byte background read meeting a
// pipelined request) it reads through c.small, so that a head is not collected a byte per
// system call.
const minDirectRead = 1 << 10

func newHygieneConn(c net.Conn, maxHead int, onReject func(reason string, status int)) *hygieneConn {
	return &hygieneConn{Conn: c, maxHead: maxHead, onReject: onReject}
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *hygieneConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Read hands out checked bytes. A read error (including a deadline set by the
// server) is returned as is and never loses a partly collected head. Bodies
// and opaque streams are read straight into p.
func (c *hygieneConn) Read(p []byte) (int, error) {
	for c.outPos == len(c.out) {
		c.out, c.outPos = c.out[:0], 0
		switch {
		case c.state == stRejected:
			return 0, io.EOF
		case c.state == stTooLarge:
			for i := range p {
				p[i] = 'x'
			}
			return len(p), nil
		case c.state == stPass && len(c.pending) == 0:
			return c.Conn.Read(p)
		case c.state == stBody || c.state == stChunkData:
			if int64(len(p)) > c.remaining {
				p = p[:c.remaining]
			}
			n, err := c.Conn.Read(p)
			c.remaining -= int64(n)
			if c.remaining == 0 {
				c.state = c.afterData()
			}
			return n, err
		}
		// The read goes straight into p (bytes that pass unchanged stay there; feed copies
		// the rest to pending or out), or through c.small when p is short and a head is
		// being collected.
		dst := p
		if len(p) < minDirectRead && len(c.pending) > 0 {
			if c.small == nil {
				c.small = make([]byte, minDirectRead)
			}
			dst = c.small
		}
		n, err := c.Conn.Read(dst)
		if n > 0 {
			c.src, c.passed, c.inPlace = dst[:n], 0, &dst[0] == &p[0]
			c.feed(dst[:n])
			if c.inPlace && err != nil {
				c.materialize() // the error comes back on the next read, as below
			}
			c.src, c.inPlace = nil, false
			if c.passed > 0 && len(c.out) == 0 {
				return c.passed, nil // everything passed unchanged, already in p
			}
		}
		if err != nil {
			if c.outPos < len(c.out) {
				break // hand out what we have; the error comes back on the next read
			}
			return 0, err
		}
	}
	n := copy(p, c.out[c.outPos:])
	c.outPos += n
	return n, nil
}

// emit passes x on: in place while x continues what passed of src, else appended to out.
func (c *hygieneConn) emit(x []byte) {
	if len(x) == 0 {
		return
	}
	if c.inPlace {
		if c.passed < len(c.src) && &c.src[c.passed] == &x[0] {
			c.passed += len(x)
			return
		}
		c.materialize()
	}
	c.out = append(c.out, x...)
}

// materialize moves what passed in place to out, ending the in-place mode of this read.
func (c *hygieneConn) materialize() {
	if !c.inPlace {
		return
	}
	c.out = append(c.out, c.src[:c.passed]...)
	c.passed, c.inPlace = 0, false
}

// afterData is the state after a body or a chunk's data.
func (c *hygieneConn) afterData() int {
	if c.state == stBody {
		return stHead
	}
	return stChunkEnd
}

// feed runs b through the framing state machine, appending what may pass to c.out.
func (c *hygieneConn) feed(b []byte) {
	for len(b) > 0 {
		switch c.state {
		case stPass:
			c.emit(b)
			return
		case stRejected, stTooLarge:
			return
		case stBody, stChunkData:
			n := int64(len(b))
			if n > c.remaining {
				n = c.remaining
			}
			c.emit(b[:n])
			b = b[n:]
			c.remaining -= n
			if c.remaining == 0 {
				c.state = c.afterData()
			}
		case stHead:
			b = c.collectHead(b)
		case stChunkSize, stChunkEnd, stTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.pending = append(c.pending, b...)
				c.emit(b)
				if len(c.pending) > maxFramingLine {
					c.state, c.pending = stPass, nil
				}
				return
			}
			line := b[:i]
			if len(c.pending) > 0 {
				line = append(c.pending, line...)
			}
			c.emit(b[:i+1])
			b = b[i+1:]
			c.framingLine(bytes.TrimRight(line, "\r"))
			c.resetPending()
		}
	}
}

// framingLine handles one complete chunk-size, chunk-end or trailer line.
func (c *hygieneConn) framingLine(line []byte) {
	switch c.state {
	case stChunkEnd:
		c.state = stChunkSize
	case stChunkSize:
		line, _, _ = bytes.Cut(line, []byte(";"))
		size, err := parseHex(bytes.TrimSpace(line))
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
	var head, rest []byte
	if len(c.pending) == 0 {
		// Common case: the whole head is in this read; no copy needed.
		if end := headEnd(b, 0); end >= 0 {
			head, rest = b[:end], b[end:]
		}
	}
	if head == nil {
		old := len(c.pending)
		start := max(old-3, 0) // the end marker may straddle reads
		c.pending = append(c.pending, b...)
		end := headEnd(c.pending, start)
		if end < 0 {
			if len(c.pending) > c.maxHead {
				c.pending = nil
				c.refuseTooLarge()
			}
			return nil
		}
		// The head did not end in what was pending before, so the rest lies in b.
		head, rest = c.pending[:end], b[end-old:]
		defer c.resetPending() // after head was copied out
	}
	if len(head) > c.maxHead {
		c.refuseTooLarge()
		return nil
	}
	if reason := c.checkHead(head); reason != "" {
		// A request line without spaces: net/http answers
		// "400 Bad Request: malformed HTTP request" and closes.
		c.materialize()
		c.out = append(append(append(c.out, "refused:"...), reason...), "\r\n\r\n"...)
		c.state = stRejected
		if c.onReject != nil {
			c.onReject(reason, 400)
		}
		return nil
	}
	c.emit(head)
	return rest
}

// resetPending empties pending, keeping its array for the next head or framing line unless
// it grew past what a common head needs.
func (c *hygieneConn) resetPending() {
	if cap(c.pending) > 8<<10 {
		c.pending = nil
		return
	}
	c.pending = c.pending[:0]
}

// refuseTooLarge replaces a head longer than maxHead by a header line that
// never ends: net/http reads it up to its own limit and answers 431.
func (c *hygieneConn) refuseTooLarge() {
	c.materialize()
	c.out = append(c.out, tooLargeHeadReplacing...)
	c.state = stTooLarge
	if c.onReject != nil {
		c.onReject(reasonHeadTooLarge, 431)
	}
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
	reqLine, rest := nextLine(head)
	if bytes.HasPrefix(reqLine, []byte("PRI * HTTP/2")) {
		c.state = stPass
		return ""
	}
	var firstCL []byte
	var hasCL, clDiffer, te, upgrade bool
	for len(rest) > 0 {
		var l []byte
		l, rest = nextLine(rest)
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			for len(value) > 0 {
				var v []byte
				v, value, _ = bytes.Cut(value, []byte(","))
				v = bytes.TrimSpace(v)
				if !hasCL {
					firstCL, hasCL = v, true
				} else if !bytes.Equal(v, firstCL) {
					clDiffer = true
				}
			}
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			te = true
		case bytes.EqualFold(name, []byte("upgrade")):
			upgrade = true
		}
	}
	if te && hasCL {
		return reasonCLWithTE
	}
	if clDiffer {
		return reasonDifferingCL
	}
	switch {
	case upgrade || bytes.HasPrefix(reqLine, []byte("CONNECT ")) || bytes.HasSuffix(reqLine, []byte("HTTP/1.0")):
		// Bytes after an upgrade may be another protocol; HTTP/1.0 ignores
		// Transfer-Encoding. Neither is checked further.
		c.state = stPass
	case te:
		c.state = stChunkSize // net/http accepts only "chunked" and refuses the rest
	case hasCL:
		n, err := strconv.ParseInt(string(firstCL), 10, 64)
		if err != nil || n < 0 {
			c.state = stPass // net/http refuses it
		} else if n > 0 {
			c.state, c.remaining = stBody, n
		}
	}
	return ""
}

// nextLine splits off the first line of b (without its CR LF or LF).
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.TrimSuffix(b, []byte("\r")), nil
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:]
}

// parseHex parses a chunk size without allocating; sizes over 2^60 fail.
func parseHex(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 15 {
		return 0, strconv.ErrSyntax
	}
	var n int64
	for _, ch := range b {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, strconv.ErrSyntax
		}
		n = n<<4 | int64(d)
	}
	return n, nil
}
