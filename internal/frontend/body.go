package frontend

import (
	"errors"
	"io"
	"sync/atomic"
	"time"

	"outrigger/internal/h1"
)

// errInterrupted ends a body read the forwarding loop stopped.
var errInterrupted = errors.New("request body no longer read")

// bodyReader reads a request body from lb's loop's connection without its framing (a
// Content-Length, or chunks by h1.Chunked), each read within body_read_timeout. It answers an
// "Expect: 100-continue" with "100 Continue" before its first read, and starts the watch for
// a client that goes away once the body is read to its end.
type bodyReader struct {
	cc          *conn
	left        int64 // bytes left of a Content-Length body
	chunked     bool
	ch          h1.Chunked
	expect      bool // 100 Continue is still to be sent
	done        bool // read to its end
	err         error
	interrupted atomic.Bool
}

// reset prepares b for the body of r.
func (b *bodyReader) reset(cc *conn, r *h1.Request) {
	*b = bodyReader{cc: cc, left: r.ContentLength, chunked: r.Chunked, expect: r.ExpectContinue}
	b.done = !r.HasBody()
}

// length is the body's length as the forwarding loop takes it: -1 when it is chunked.
func (b *bodyReader) length() int64 {
	if b.chunked {
		return -1
	}
	return b.left
}

// Interrupt unblocks a read in progress for good (the backend answered before the body was
// sent); the connection then closes.
func (b *bodyReader) Interrupt() {
	b.interrupted.Store(true)
	_ = b.cc.c.SetReadDeadline(aLongTimeAgo)
}

// Read reads body bytes.
func (b *bodyReader) Read(p []byte) (int, error) {
	switch {
	case b.done:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	case b.interrupted.Load():
		return 0, errInterrupted
	case len(p) == 0:
		return 0, nil
	}
	if b.expect {
		b.expect = false
		if err := b.cc.writeNow([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
			b.err = err
			return 0, err
		}
	}
	n, err := b.read(p)
	switch {
	case b.done:
		b.cc.arm() // the client is watched from now on
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	case err != nil:
		if b.interrupted.Load() {
			err = errInterrupted
		}
		b.err = err
		return n, err
	}
	return n, nil
}

// read reads what is buffered, or from the connection within body_read_timeout.
func (b *bodyReader) read(p []byte) (int, error) {
	rd := b.cc.rd
	for {
		buf := rd.Buffered()
		if len(buf) == 0 {
			b.deadline()
			if !b.chunked && len(p) >= rd.Size() {
				n, err := rd.Read(p[:min(int64(len(p)), b.left)]) // straight into p
				b.left -= int64(n)
				b.done = b.left == 0
				return n, unexpected(err, b.done)
			}
			if err := rd.Fill(rd.Size()); err != nil {
				return 0, unexpected(err, false)
			}
			continue
		}
		if !b.chunked {
			n := copy(p, buf[:min(int64(len(buf)), b.left)])
			rd.Discard(n)
			b.left -= int64(n)
			b.done = b.left == 0
			return n, nil
		}
		if left := b.ch.DataLeft(); left > 0 {
			buf = buf[:min(int64(len(buf)), int64(len(p)), left)]
		}
		n, data, err := b.ch.Next(buf)
		if err != nil {
			return 0, err
		}
		if data {
			copy(p, buf[:n])
		}
		rd.Discard(n)
		b.done = b.ch.Done()
		switch {
		case data:
			return n, nil
		case b.done:
			return 0, nil // Read reports the end
		}
	}
}

// deadline gives the next read from the client body_read_timeout.
func (b *bodyReader) deadline() {
	if d := b.cc.set.BodyReadTimeout; d > 0 && !b.interrupted.Load() {
		_ = b.cc.c.SetReadDeadline(time.Now().Add(d))
	}
}

// unexpected turns an EOF before the body's end into io.ErrUnexpectedEOF.
func unexpected(err error, done bool) error {
	if err == io.EOF && !done {
		return io.ErrUnexpectedEOF
	}
	if done {
		return nil
	}
	return err
}
