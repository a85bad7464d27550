package frontend

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// h2Body is an HTTP/2 request body as the forwarding loop reads it (balancer.BodySource):
// the read loop puts each DATA frame's payload in, the stream's goroutine reads it out, each
// read within body_read_timeout, and what it read goes back to the client's flow-control
// windows. It answers a client that expects 100-continue before its first read.
type h2Body struct {
	st      *h2Stream
	notify  chan struct{} // a put, a failure or an interrupt happened
	timeout time.Duration

	mu          sync.Mutex
	buf         []byte
	off         int
	window      int64 // what the client may still send on the stream
	unacked     int64 // read bytes not yet given back to the stream's window
	declared    int64 // the content-length, -1 for none
	received    int64
	ended       bool  // END_STREAM came
	err         error // the client reset the stream, or the connection ended
	interrupted bool
	expect      bool // 100 Continue is still to be sent
}

// reset prepares b for st's request.
func (b *h2Body) reset(st *h2Stream) {
	b.mu.Lock()
	b.st = st
	b.buf, b.off = b.buf[:0], 0
	if cap(b.buf) > 64<<10 {
		b.buf = nil
	}
	b.window, b.unacked = h2StreamWindow, 0
	b.declared, b.received = -1, 0
	b.ended, b.err, b.interrupted, b.expect = false, nil, false, false
	b.mu.Unlock()
	select {
	case <-b.notify:
	default:
	}
}

// put takes a DATA frame's payload (and the padding the frame counted against the window):
// a non-zero code is a stream error (more than the window, or a length other than the
// content-length).
func (b *h2Body) put(data []byte, pad int64, end bool) http2.ErrCode {
	n := int64(len(data))
	b.mu.Lock()
	switch {
	case n+pad > b.window:
		b.mu.Unlock()
		return http2.ErrCodeFlowControl
	case b.ended:
		b.mu.Unlock()
		return http2.ErrCodeStreamClosed
	}
	b.window -= n + pad
	b.unacked += pad
	b.received += n
	if b.declared >= 0 && (b.received > b.declared || end && b.received != b.declared) {
		b.mu.Unlock()
		return http2.ErrCodeProtocol
	}
	discard := b.err != nil || b.interrupted
	if !discard {
		if b.off > 0 && b.off == len(b.buf) {
			b.buf, b.off = b.buf[:0], 0
		}
		b.buf = append(b.buf, data...)
	}
	b.ended = b.ended || end
	b.mu.Unlock()
	if discard && n > 0 {
		b.st.hc.consumed(n) // nobody reads it: the connection's window gets it back now
	}
	b.signal()
	return 0
}

func (b *h2Body) signal() {
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// fail ends the body with err unless it ended already.
func (b *h2Body) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	b.signal()
}

// Interrupt unblocks a read in progress, and every later one, for good.
func (b *h2Body) Interrupt() {
	b.mu.Lock()
	b.interrupted = true
	b.mu.Unlock()
	b.signal()
}

// discard drops what was received and not read, and returns how many bytes that was (for
// the connection's window).
func (b *h2Body) discard() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := int64(len(b.buf) - b.off)
	b.buf, b.off = b.buf[:0], 0
	b.interrupted = true
	return n
}

// Read reads body bytes.
func (b *h2Body) Read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		switch {
		case b.interrupted:
			b.mu.Unlock()
			return 0, errInterrupted
		case len(b.buf) > b.off:
			n := copy(p, b.buf[b.off:])
			b.off += n
			give := b.acknowledge(int64(n))
			b.mu.Unlock()
			b.st.hc.consumed(int64(n))
			if give > 0 {
				b.st.hc.w.windowUpdate(b.st.id, uint32(give))
			}
			return n, nil
		case b.ended:
			b.mu.Unlock()
			return 0, io.EOF
		case b.err != nil:
			err := b.err
			b.mu.Unlock()
			return 0, err
		}
		expect := b.expect
		b.expect = false
		b.mu.Unlock()
		if expect {
			if err := b.st.continue100(); err != nil {
				return 0, err
			}
		}
		if timer == nil && b.timeout > 0 {
			timer = time.NewTimer(b.timeout)
		}
		var expired <-chan time.Time
		if timer != nil {
			expired = timer.C
		}
		select {
		case <-b.notify:
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// acknowledge counts n bytes read; it returns how much window to give back to the stream
// (0 while that is little, or once the body ended). b.mu is held.
func (b *h2Body) acknowledge(n int64) int64 {
	b.unacked += n
	if b.ended || b.unacked < h2StreamWindow/4 {
		return 0
	}
	give := b.unacked
	b.unacked = 0
	b.window += give
	return give
}
