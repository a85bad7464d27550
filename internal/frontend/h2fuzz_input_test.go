package frontend

import (
	"encoding/binary"

	"golang.org/x/net/http2/hpack"
)

// h2Conv is one fuzz input: the requests a client sends on one HTTP/2 connection after the
// preface and SETTINGS, one stream each (1, 3, 5, ...), one after the other.
type h2Conv struct{ reqs []h2Req }

// h2Req is one request stream as the client frames it: HEADERS (and CONTINUATION), DATA,
// trailers, and how it ends.
type h2Req struct {
	fields       []hpack.HeaderField // the header block, pseudo-fields and fields in order
	data         [][]byte            // one DATA frame each
	end          h2End
	pad          uint8 // 0: DATA frames unpadded; n: padded with n-1 bytes
	split        uint8 // 0: one HEADERS frame; n: CONTINUATION frames of n bytes
	trailers     []hpack.HeaderField
	hasTrailers  bool
	trailersOpen bool // the trailers do not end the stream
}

// h2End is how the client ends a stream.
type h2End uint8

const (
	endOnLast    h2End = iota // END_STREAM on the last frame (HEADERS when nothing follows)
	endNever                  // the stream is left open
	endReset                  // RST_STREAM(CANCEL) after the body
	endEmptyData              // END_STREAM on an empty DATA frame (before the trailers)
)

// Limits of a decoded input: the client ignores flow control, so that all its DATA (with
// padding) fits in the initial 65535-byte window.
const (
	h2MaxReqs      = 8
	h2MaxFields    = 24
	h2MaxValue     = 4096
	h2MaxFrames    = 12
	h2MaxFrameData = 8192
	h2MaxConvData  = 60000
)

// ended reports whether the client sends END_STREAM on the stream.
func (r *h2Req) ended() bool {
	return (r.end == endOnLast || r.end == endEmptyData) && !(r.hasTrailers && r.trailersOpen)
}

// body is every DATA payload the client sent, in order.
func (r *h2Req) body() []byte {
	var b []byte
	for _, d := range r.data {
		b = append(b, d...)
	}
	return b
}

// encode is the fuzz input for c; decodeH2Conv(encode(c)) is c.
func (c *h2Conv) encode() []byte {
	var b []byte
	putFields := func(fs []hpack.HeaderField) {
		b = append(b, byte(len(fs)))
		for _, f := range fs {
			b = binary.AppendUvarint(b, uint64(len(f.Name)))
			b = append(b, f.Name...)
			b = binary.AppendUvarint(b, uint64(len(f.Value)))
			b = append(b, f.Value...)
		}
	}
	for _, r := range c.reqs {
		flags := byte(r.end)
		if r.hasTrailers {
			flags |= 4
		}
		if r.trailersOpen {
			flags |= 8
		}
		b = append(b, flags, r.pad, r.split)
		putFields(r.fields)
		b = append(b, byte(len(r.data)))
		for _, d := range r.data {
			b = binary.AppendUvarint(b, uint64(len(d)))
			b = append(b, d...)
		}
		putFields(r.trailers)
	}
	return b
}

// h2Reader reads a fuzz input; past its end it reads zeros.
type h2Reader struct{ b []byte }

func (r *h2Reader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *h2Reader) bytes(limit int) []byte {
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.b = nil
		return nil
	}
	r.b = r.b[k:]
	n = min(n, uint64(limit), uint64(len(r.b)))
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *h2Reader) fields() []hpack.HeaderField {
	n := int(r.byte()) % (h2MaxFields + 1)
	var fs []hpack.HeaderField
	for i := 0; i < n && len(r.b) > 0; i++ {
		name := string(r.bytes(256))
		fs = append(fs, hpack.HeaderField{Name: name, Value: string(r.bytes(h2MaxValue))})
	}
	return fs
}

// decodeH2Conv reads any bytes as a conversation, within the limits.
func decodeH2Conv(in []byte) h2Conv {
	r := &h2Reader{b: in}
	var c h2Conv
	total := 0
	for len(r.b) > 0 && len(c.reqs) < h2MaxReqs {
		flags := r.byte()
		q := h2Req{end: h2End(flags & 3), hasTrailers: flags&4 != 0, trailersOpen: flags&8 != 0,
			pad: r.byte(), split: r.byte()}
		q.fields = q.fieldsOrNil(r.fields())
		n := int(r.byte()) % (h2MaxFrames + 1)
		for i := 0; i < n; i++ {
			d := r.bytes(h2MaxFrameData)
			if total += len(d) + int(q.pad); total > h2MaxConvData {
				break
			}
			q.data = append(q.data, append([]byte{}, d...))
		}
		q.trailers = q.fieldsOrNil(r.fields())
		c.reqs = append(c.reqs, q)
	}
	return c
}

func (*h2Req) fieldsOrNil(fs []hpack.HeaderField) []hpack.HeaderField {
	if len(fs) == 0 {
		return nil
	}
	return fs
}
