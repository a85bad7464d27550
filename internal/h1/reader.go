package h1

import (
	"errors"
	"io"
)

// ErrHeadTooLarge is returned by Reader.Fill when the limit is buffered already.
var ErrHeadTooLarge = errors.New("h1: head too large")

// Reader is the read buffer of one HTTP/1 connection: it gathers a whole head in one
// contiguous slice, growing up to a limit when the head is larger than the buffer, and then
// hands out the bytes that follow. Slices from Buffered stay valid until the next Fill or
// Read.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int
	size int // the size the buffer starts with and returns to after a larger head
}

// NewReader returns a Reader of rd with a buffer of size bytes.
func NewReader(rd io.Reader, size int) *Reader {
	return &Reader{rd: rd, buf: make([]byte, size), size: size}
}

// Reset empties the buffer and reads from rd from now on; a grown buffer is dropped.
func (b *Reader) Reset(rd io.Reader) {
	b.rd, b.r, b.w = rd, 0, 0
	if len(b.buf) != b.size {
		b.buf = make([]byte, b.size)
	}
}

// Buffered returns the bytes read and not yet consumed.
func (b *Reader) Buffered() []byte { return b.buf[b.r:b.w] }

// Discard consumes n buffered bytes.
func (b *Reader) Discard(n int) {
	b.r += n
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
}

// Fill reads once from the connection and adds what it got to the buffered bytes. It makes
// room by moving them to the front of the buffer, or by growing it, so that up to limit
// bytes can be buffered; with limit buffered already it returns ErrHeadTooLarge. A read error
// is returned as it is, with what was read before it kept.
func (b *Reader) Fill(limit int) error {
	n := b.w - b.r
	if n >= limit {
		return ErrHeadTooLarge
	}
	if b.w == len(b.buf) {
		if b.r > 0 {
			copy(b.buf, b.buf[b.r:b.w])
			b.r, b.w = 0, n
		} else {
			grown := make([]byte, min(max(2*len(b.buf), 4<<10), limit))
			copy(grown, b.buf[:b.w])
			b.buf = grown
		}
	}
	m, err := b.rd.Read(b.buf[b.w:min(len(b.buf), b.r+limit)])
	b.w += m
	if m > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Read hands out buffered bytes, or reads from the connection when there are none (into p
// directly when p is at least as large as the buffer).
func (b *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if len(p) >= len(b.buf) {
			return b.rd.Read(p)
		}
		b.r, b.w = 0, 0
		if len(b.buf) != b.size && b.size > 0 {
			b.buf = make([]byte, b.size) // a large head is over: back to the usual size
		}
		m, err := b.rd.Read(b.buf)
		b.w = m
		if m == 0 {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.Discard(n)
	return n, nil
}

// Size returns the size of the buffer as it is now.
func (b *Reader) Size() int { return len(b.buf) }

// HeadEnd reports whether buf, searched from offset from on (a few bytes before what was
// last added, so that a line end split across reads is found), holds a line end followed by
// another: the end of a head, or a bare LF that ParseRequest refuses.
func HeadEnd(buf []byte, from int) bool {
	for i := max(from, 0); i < len(buf); i++ {
		if buf[i] != '\n' {
			continue
		}
		if i+1 < len(buf) && (buf[i+1] == '\n' || buf[i+1] == '\r') {
			return true
		}
	}
	return false
}
