package frontend

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/h1"
)

// gate stands between an HTTP/1 client connection and net/http's server, so that h1's rules
// decide what net/http may read, at every position of the connection: it follows the
// client's byte stream with h1 (every request head with ParseRequest, chunked bodies with
// h1.Chunked), passes on only what h1 accepted, and replaces a refused head by one that
// net/http answers with the same status as lb's own loop, then closes: a malformed request
// line (400), an endless header line (431), or an unmet expectation (417). net/http never
// sees a byte h1 did not frame, so the two cannot read a request differently.
//
// It also holds the first head to read_header_timeout counted from the accept (net/http
// would start its own count after the TLS handshake the Listener did), and after a switch of
// protocols (101) it passes everything on as it comes. Bytes a client sends after an Upgrade
// request and before the 101 are framed as HTTP, as they are if the backend does not switch:
// a client waits for the 101 before it speaks the new protocol (RFC 6455, RFC 9113's h2c).
type gate struct {
	net.Conn
	tlsState *tls.ConnectionState // set when the Listener terminated TLS
	maxHead  int
	onRefuse func(reason string, status int)

	state   gateState
	left    int64      // bytes left in a Content-Length body
	chunked h1.Chunked // a chunked body's framing
	req     h1.Request
	pending []byte // a head being gathered
	in      []byte // read buffer
	out     []byte // checked bytes; out[outPos:] not yet handed to the reader
	outPos  int
	readErr error // an error that comes after out is handed over
	// bodyRefusal is why the gate cut a chunked body h1 refused, for the handler to answer.
	bodyRefusal atomic.Pointer[h1.Error]

	mu           sync.Mutex // guards the deadline fields (net/http sets deadlines from other goroutines)
	firstHead    bool       // the first head is not complete yet
	headDeadline time.Time  // its deadline, from the accept
	theirs       time.Time  // net/http's own read deadline
}

type gateState uint8

const (
	gateHead     gateState = iota // gathering a request head
	gateBody                      // in a Content-Length body
	gateChunked                   // in a chunked body
	gatePass                      // after a switch of protocols: everything passes
	gateRefused                   // a head was replaced: nothing more passes (reads wait, as on a silent client)
	gateCut                       // a chunked body was refused: the body ends here for net/http
	gateTooLarge                  // a head was too long: an endless header line follows
)

// Replacements net/http answers with lb's statuses (a refused head of status 400 becomes a
// request line without spaces: "refused-REASON").
const (
	tooLargeHead    = "GET / HTTP/1.1\r\nX-Too-Large: "
	expectationHead = "GET / HTTP/1.1\r\nHost: refused\r\nExpect: refused\r\n\r\n" // 417
)

func newGate(c net.Conn, cs *tls.ConnectionState, headDeadline time.Time, maxHead int, onRefuse func(reason string, status int)) *gate {
	g := &gate{Conn: c, tlsState: cs, maxHead: maxHead, onRefuse: onRefuse,
		firstHead: true, headDeadline: headDeadline, in: make([]byte, 4<<10)}
	_ = c.SetReadDeadline(headDeadline)
	return g
}

// passThrough lets every later byte through as it is: the connection switched protocols.
func (g *gate) passThrough() {
	g.state = gatePass
	g.clearFirstHead()
}

// SetReadDeadline keeps the first head's deadline when net/http asks for a later one.
func (g *gate) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	g.theirs = t
	if g.firstHead && (t.IsZero() || t.After(g.headDeadline)) {
		t = g.headDeadline
	}
	g.mu.Unlock()
	return g.Conn.SetReadDeadline(t)
}

// SetDeadline sets the write deadline, and the read deadline as SetReadDeadline does.
func (g *gate) SetDeadline(t time.Time) error {
	if err := g.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return g.SetReadDeadline(t)
}

// clearFirstHead ends the first head's deadline: net/http's own applies from now on.
func (g *gate) clearFirstHead() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.firstHead {
		g.firstHead = false
		_ = g.Conn.SetReadDeadline(g.theirs)
	}
}

// CloseWrite half-closes the connection when the underlying one can.
func (g *gate) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Read hands out checked bytes. A read error (a deadline net/http set, too) is returned as it
// is, after the checked bytes before it, and never loses a partly gathered head.
func (g *gate) Read(p []byte) (int, error) {
	for g.outPos == len(g.out) {
		g.out, g.outPos = g.out[:0], 0
		if err := g.readErr; err != nil {
			g.readErr = nil
			return 0, err
		}
		switch g.state {
		case gateRefused:
			return g.drain()
		case gateCut:
			return 0, io.EOF
		case gateTooLarge:
			for i := range p {
				p[i] = 'x'
			}
			return len(p), nil
		case gatePass:
			if len(g.pending) == 0 {
				return g.Conn.Read(p)
			}
			g.out, g.pending = append(g.out, g.pending...), g.pending[:0]
			continue
		}
		n, err := g.Conn.Read(g.in)
		if n > 0 {
			g.feed(g.in[:n])
		}
		if err != nil {
			if g.outPos < len(g.out) {
				g.readErr = err // hand out what we have; the error comes on the next read
				break
			}
			return 0, err
		}
	}
	n := copy(p, g.out[g.outPos:])
	g.outPos += n
	return n, nil
}

// drain reads and drops what the client still sends after a refused head, until its
// connection ends or a deadline net/http set: net/http answers the requests before the
// refused one and then reads the replacement, and an EOF here would tell it the client left
// (it cancels the request in progress) when the client merely pipelined.
func (g *gate) drain() (int, error) {
	for {
		if _, err := g.Conn.Read(g.in); err != nil {
			return 0, err
		}
	}
}

// feed runs b through the framing, appending what may pass to out.
func (g *gate) feed(b []byte) {
	for len(b) > 0 {
		switch g.state {
		case gatePass:
			g.pending = append(g.pending, b...)
			return
		case gateRefused, gateCut, gateTooLarge:
			return
		case gateBody:
			n := int(min(int64(len(b)), g.left))
			g.out = append(g.out, b[:n]...)
			b = b[n:]
			if g.left -= int64(n); g.left == 0 {
				g.state = gateHead
			}
		case gateChunked:
			n, _, err := g.chunked.Next(b)
			g.out = append(g.out, b[:n]...)
			b = b[n:]
			if err != nil {
				g.state = gateCut // the body ends here for net/http: it fails and closes
				g.report(err)
				return
			}
			if g.chunked.Done() {
				g.state = gateHead
			}
		case gateHead:
			b = g.gatherHead(b)
		}
	}
}

// gatherHead adds b to the head being gathered; once the head is complete it is checked and
// passed on (or replaced). It returns the bytes after the head.
func (g *gate) gatherHead(b []byte) []byte {
	from := max(len(g.pending)-2, 0)
	g.pending = append(g.pending, b...)
	if !h1.HeadEnd(g.pending, from) {
		if len(g.pending) > g.maxHead {
			g.refuse(reasonHeadTooLarge, 431)
		}
		return nil
	}
	err := h1.ParseRequest(g.pending, &g.req)
	switch {
	case err == h1.ErrIncomplete:
		if len(g.pending) > g.maxHead {
			g.refuse(reasonHeadTooLarge, 431)
		}
		return nil
	case err != nil:
		var e *h1.Error
		if errors.As(err, &e) {
			g.refuse(e.Reason, e.Status)
		} else {
			g.refuse(err.Error(), 400)
		}
		return nil
	case g.req.HeadLen > g.maxHead:
		g.refuse(reasonHeadTooLarge, 431)
		return nil
	}
	head := g.req.HeadLen
	g.out = append(g.out, g.pending[:head]...)
	rest := append([]byte(nil), g.pending[head:]...)
	switch {
	case g.req.Chunked:
		g.state, g.chunked = gateChunked, h1.Chunked{}
	case g.req.ContentLength > 0:
		g.state, g.left = gateBody, g.req.ContentLength
	}
	g.pending = g.pending[:0]
	g.clearFirstHead()
	return rest
}

// refuse replaces the head being gathered by one net/http answers with status, and closes.
func (g *gate) refuse(reason string, status int) {
	g.pending = nil
	switch status {
	case 431:
		g.out = append(g.out, tooLargeHead...)
		g.state = gateTooLarge
	case 417:
		g.out = append(g.out, expectationHead...)
		g.state = gateRefused
	default:
		g.out = append(g.out, "refused-"+strings.ReplaceAll(reason, " ", "-")+"\r\n\r\n"...)
		g.state = gateRefused
	}
	if g.onRefuse != nil {
		g.onRefuse(reason, status)
	}
}

// report keeps and logs why a chunked body whose head had passed was refused.
func (g *gate) report(err error) {
	var e *h1.Error
	if !errors.As(err, &e) {
		e = &h1.Error{Status: 400, Reason: err.Error()}
	}
	g.bodyRefusal.Store(e)
	if g.onRefuse != nil {
		g.onRefuse(e.Reason, e.Status)
	}
}
