package balancer

import (
	"io"
	"net/netip"
	"time"
)

// Request is one client request as the forwarding loop sends it on. A front end fills it
// from what it parsed: the head through an Outgoing (which applies the table of what a
// backend may see), the body as a BodySource that Forward reads.
type Request struct {
	Method string // e.g. "GET": the retry rules and the log
	Path   string // the decoded path, for the log
	// Head is the head a backend receives, from the request line to the last field before
	// the body's framing (Outgoing.Finish); the exchange adds the framing and the empty line.
	Head []byte
	// BodySrc is the request body without its framing, BodyLength its length (0: none; -1:
	// not known in advance, a chunked body). Framed is set when the client framed a body
	// (a Content-Length or chunked), so that one of length 0 still goes with
	// "Content-Length: 0".
	BodySrc    BodySource
	BodyLength int64
	Framed     bool
	// Body is what Forward read of the body (ReadBody).
	Body Body
	// Upgrade is the protocol the client asks to switch to (Connection: upgrade), "" for none.
	Upgrade string
	// IdempotencyKey is set when the request has an Idempotency-Key or X-Idempotency-Key
	// (net/http's rule for sending it again on a fresh connection).
	IdempotencyKey bool
	ClientIP       netip.Addr // the real client, for the log
	RequestID      string     // as sent to the backend and echoed to the client
	// HSTS is the Strict-Transport-Security value lb sets on the answer (it replaces a
	// backend's), "" for none.
	HSTS  string
	Begin time.Time // when the request's head was read
}

// BodySource is a client's request body as a front end reads it, without its framing.
type BodySource interface {
	io.Reader
	// Interrupt unblocks a Read in progress, and every later one, for good: the backend
	// answered before the body was sent, and the rest of it will not be read.
	Interrupt()
}

// Body is a request body: buffered whole (it can be sent again on a retry) or streamed from
// the client as it is sent on (it can be sent again only if no byte of it went out).
type Body struct {
	// Bytes is the body, or for a streamed body what was read of it before it turned out
	// longer than retry_body_bytes.
	Bytes []byte
	// Src is the rest of a streamed body; nil for a buffered one.
	Src BodySource
	// Length is the whole body's length, or -1 when it is not known (it is sent chunked).
	Length int64
	// started is set once a byte of a streamed body went to a backend.
	started bool
}

// Streamed reports whether the body is read from the client as it is sent on.
func (b *Body) Streamed() bool { return b.Src != nil }

// replayable reports whether the body can be sent again after a failed attempt.
func (b *Body) replayable() bool { return b.Src == nil || !b.started }

// ClientBodyError is a failure to read the request body from the client: it went away, or
// was slower than body_read_timeout.
type ClientBodyError struct{ Err error }

func (e *ClientBodyError) Error() string { return "reading the request body: " + e.Err.Error() }
func (e *ClientBodyError) Unwrap() error { return e.Err }

// ReadBody reads a request body of length bytes (-1: until src's EOF, a chunked body) from
// src: whole into buf (which it may grow) when it is at most limit bytes, else the first
// bytes and a stream of the rest. An error reading src is a *ClientBodyError.
func ReadBody(src BodySource, length, limit int64, buf []byte) (Body, error) {
	if length == 0 {
		return Body{Bytes: buf[:0], Length: 0}, nil
	}
	if length > limit {
		return Body{Bytes: buf[:0], Src: src, Length: length}, nil
	}
	want := length
	if want < 0 {
		want = limit + 1 // one more tells that it is larger
	}
	if int64(cap(buf)) < want && length > 0 {
		buf = make([]byte, 0, want)
	}
	buf = buf[:0]
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // let append pick the growth
		}
		end := min(int64(cap(buf)), want)
		n, err := src.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF && length < 0:
			return Body{Bytes: buf, Length: int64(len(buf))}, nil
		case err == io.EOF && int64(len(buf)) == length:
		case err == io.EOF:
			return Body{}, &ClientBodyError{Err: io.ErrUnexpectedEOF}
		case err != nil:
			return Body{}, &ClientBodyError{Err: err}
		}
	}
	if length >= 0 {
		return Body{Bytes: buf, Length: length}, nil
	}
	return Body{Bytes: buf, Src: src, Length: -1}, nil // longer than limit: stream the rest
}
