package frontend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Writer is the write side of one HTTP/2 connection. Every stream appends its frames to one
// buffer under one lock, and one goroutine per connection writes that buffer to the client
// once the goroutines that produce frames have had their turn: answers that complete together
// leave in one write (one TLS record, one system call) rather than one each, which is most of
// what net/http's HTTP/2 server spends per request. It also keeps the flow-control windows
// toward the client and the HPACK encoder, whose state must follow the order of the frames.
type h2Writer struct {
	c       net.Conn
	timeout time.Duration // write_timeout: a write (or a wait for window) that does not progress

	mu      sync.Mutex
	cond    sync.Cond // broadcast when the buffer was written, a window grew, or err was set
	buf     []byte    // frames not yet taken by the flusher
	kicked  bool      // the flusher has been told there is something to write
	waiters int       // goroutines waiting on cond
	err     error     // the connection failed or closed: every later write fails
	enc     *hpack.Encoder
	hbuf    bytes.Buffer // one header block, as enc writes it

	connWindow    int64 // what the client lets lb send on the connection
	initialWindow int32 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame      int   // the client's SETTINGS_MAX_FRAME_SIZE

	kick chan struct{} // wakes the flusher
	done chan struct{} // closed when the flusher has returned
}

// h2WriteHighWater is how many bytes of frames may wait for the flusher before a stream that
// writes more waits for it: the bound on what one connection buffers toward a slow client.
const h2WriteHighWater = 256 << 10

// errStreamClosed is a write to a stream that the client reset, or that lb ended already.
var errStreamClosed = errors.New("http2: stream closed")

// errWindowTimeout is a write that waited write_timeout for the client's flow-control window.
var errWindowTimeout = errors.New("http2: no flow-control window within write_timeout")

func (w *h2Writer) init(c net.Conn, timeout time.Duration) {
	w.c, w.timeout = c, timeout
	w.cond.L = &w.mu
	w.enc = hpack.NewEncoder(&w.hbuf)
	w.connWindow = 65535
	w.initialWindow = 65535
	w.maxFrame = 16384
	w.kick = make(chan struct{}, 1)
	w.done = make(chan struct{})
	w.buf = make([]byte, 0, 16<<10)
}

// run is the flusher: it writes what the streams gathered, until stop.
func (w *h2Writer) run(stop <-chan struct{}) {
	defer close(w.done)
	out := make([]byte, 0, 16<<10)
	var deadline time.Time
	for {
		select {
		case <-w.kick:
		case <-stop:
			return
		}
		// Let the goroutines that are ready (other streams whose answers arrived with this
		// one) add their frames first, so that they go out in the same write.
		runtime.Gosched()
		w.mu.Lock()
		out, w.buf = w.buf, out[:0]
		w.kicked = false
		failed := w.err != nil
		w.mu.Unlock()
		if len(out) > 0 && !failed {
			if w.timeout > 0 {
				// Move the deadline only when a quarter of it has gone, as netHTTPClient does.
				if now := time.Now(); deadline.Sub(now) < w.timeout*3/4 {
					deadline = now.Add(w.timeout)
					_ = w.c.SetWriteDeadline(deadline)
				}
			}
			if _, err := w.c.Write(out); err != nil {
				// The client does not read (write_timeout) or is gone: the connection is of
				// no more use, and closing it ends its read loop too.
				w.fail(err)
				_ = w.c.Close()
			}
		}
		if cap(out) > 1<<20 {
			out = make([]byte, 0, 16<<10)
		}
		w.mu.Lock()
		if w.waiters > 0 {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
}

// fail makes every later write fail with err, and wakes the writers that wait.
func (w *h2Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

// scheduleLocked has the flusher write the buffer soon.
func (w *h2Writer) scheduleLocked() {
	if !w.kicked {
		w.kicked = true
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// waitLocked waits for the flusher, a window update or a failure.
func (w *h2Writer) waitLocked() {
	w.waiters++
	w.cond.Wait()
	w.waiters--
}

// roomLocked waits until the buffer is below its high-water mark; false if the connection
// failed meanwhile.
func (w *h2Writer) roomLocked() bool {
	for len(w.buf) >= h2WriteHighWater && w.err == nil {
		w.scheduleLocked()
		w.waitLocked()
	}
	return w.err == nil
}

// drain waits until everything written so far has gone to the connection (or failed).
func (w *h2Writer) drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for (len(w.buf) > 0 || w.kicked) && w.err == nil {
		w.scheduleLocked()
		w.waitLocked()
	}
}

// appendFrameHeader appends the 9-byte header of a frame.
func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, stream uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(stream>>24)&0x7f, byte(stream>>16), byte(stream>>8), byte(stream))
}

// h2ControlLimit bounds what may wait for the flusher when a control frame is added: a client
// that floods lb with frames that ask for an answer (PING, SETTINGS, frames that earn a
// RST_STREAM) without reading the answers loses its connection rather than grow lb's memory.
const h2ControlLimit = h2WriteHighWater + 1<<20

// errControlFlood is a client that asks for more control frames than it reads.
var errControlFlood = errors.New("http2: client does not read the control frames it asks for")

// control writes a connection-level or bodiless frame (SETTINGS, PING, WINDOW_UPDATE,
// RST_STREAM, GOAWAY): payload after the header. It never waits for room, since the read
// loop that writes most of them must not block on a slow client; past h2ControlLimit the
// connection is closed instead.
func (w *h2Writer) control(t http2.FrameType, flags http2.Flags, stream uint32, payload ...[]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if len(w.buf) > h2ControlLimit {
		w.err = errControlFlood
		w.cond.Broadcast()
		_ = w.c.Close()
		return
	}
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	w.buf = appendFrameHeader(w.buf, n, t, flags, stream)
	for _, p := range payload {
		w.buf = append(w.buf, p...)
	}
	w.scheduleLocked()
}

func (w *h2Writer) windowUpdate(stream uint32, incr uint32) {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], incr&0x7fffffff)
	w.control(http2.FrameWindowUpdate, 0, stream, p[:])
}

func (w *h2Writer) rstStream(stream uint32, code http2.ErrCode) {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(code))
	w.control(http2.FrameRSTStream, 0, stream, p[:])
}

func (w *h2Writer) goAway(last uint32, code http2.ErrCode) {
	var p [8]byte
	binary.BigEndian.PutUint32(p[:4], last&0x7fffffff)
	binary.BigEndian.PutUint32(p[4:], uint32(code))
	w.control(http2.FrameGoAway, 0, 0, p[:])
}

func (w *h2Writer) settings(s ...http2.Setting) {
	p := make([]byte, 0, 6*len(s))
	for _, v := range s {
		p = binary.BigEndian.AppendUint16(p, uint16(v.ID))
		p = binary.BigEndian.AppendUint32(p, v.Val)
	}
	w.control(http2.FrameSettings, 0, 0, p)
}

// headers writes a header block for st: HEADERS, and CONTINUATION frames if it is longer
// than the client's frame size. end sets END_STREAM.
func (w *h2Writer) headers(st *h2Stream, fields []hpack.HeaderField, end bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.roomLocked() {
		return w.err
	}
	if st.sendState != h2SendOpen {
		return errStreamClosed
	}
	w.hbuf.Reset()
	for i := range fields {
		_ = w.enc.WriteField(fields[i]) // writes to a bytes.Buffer: no error
	}
	block := w.hbuf.Bytes()
	t, flags := http2.FrameHeaders, http2.Flags(0)
	if end {
		flags |= http2.FlagHeadersEndStream
		st.sendState = h2SendEnded
	}
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), w.maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		w.buf = appendFrameHeader(w.buf, n, t, f, st.id)
		w.buf = append(w.buf, block[:n]...)
		block = block[n:]
		t, flags = http2.FrameContinuation, 0
	}
	w.scheduleLocked()
	return nil
}

// data writes p on st as DATA frames within the flow-control windows, waiting up to
// write_timeout for the client to open them; end sets END_STREAM on the last frame (an
// empty p with end writes an empty frame that ends the stream).
func (w *h2Writer) data(st *h2Stream, p []byte, end bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var timer *time.Timer
	expired := false
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		switch {
		case !w.roomLocked():
			return w.err
		case st.sendState != h2SendOpen:
			return errStreamClosed
		}
		n := min(len(p), w.maxFrame, int(min(int64(st.sendWindow), w.connWindow)))
		if n > 0 || len(p) == 0 {
			n = max(n, 0)
			var flags http2.Flags
			if end && n == len(p) {
				flags = http2.FlagDataEndStream
				st.sendState = h2SendEnded
			}
			w.buf = appendFrameHeader(w.buf, n, http2.FrameData, flags, st.id)
			w.buf = append(w.buf, p[:n]...)
			st.sendWindow -= int32(n)
			w.connWindow -= int64(n)
			p = p[n:]
			w.scheduleLocked()
			if len(p) == 0 {
				return nil
			}
			continue
		}
		// No window: wait for the client's WINDOW_UPDATE, up to write_timeout.
		if expired {
			return errWindowTimeout
		}
		if timer == nil && w.timeout > 0 {
			timer = time.AfterFunc(w.timeout, func() {
				w.mu.Lock()
				expired = true
				w.cond.Broadcast()
				w.mu.Unlock()
			})
		}
		w.scheduleLocked()
		w.waitLocked()
	}
}

// grow adds incr to the connection's send window (stream 0) or st's; false if the window
// would pass 2^31-1, a flow-control error.
func (w *h2Writer) grow(st *h2Stream, incr uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st == nil {
		w.connWindow += int64(incr)
		if w.connWindow > 1<<31-1 {
			return false
		}
	} else {
		v := int64(st.sendWindow) + int64(incr)
		if v > 1<<31-1 {
			return false
		}
		st.sendWindow = int32(v)
	}
	if w.waiters > 0 {
		w.cond.Broadcast()
	}
	return true
}

// closeSend marks st's sending side done (the client reset it, or lb did), waking a write
// that waits for window.
func (w *h2Writer) closeSend(st *h2Stream) {
	w.mu.Lock()
	st.sendState = h2SendClosed
	if w.waiters > 0 {
		w.cond.Broadcast()
	}
	w.mu.Unlock()
}
