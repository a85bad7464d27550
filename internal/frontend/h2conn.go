package frontend

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Conn is one HTTP/2 client connection on lb's own HTTP/2 server: one goroutine reads
// frames and keeps the connection's state (streams, flow control toward lb, settings), one
// goroutine per request stream forwards it through the Proxy, and one writes what they all
// produce (h2Writer).
type h2Conn struct {
	srv  *h2Server
	c    net.Conn
	peer netip.Addr
	set  Settings
	fr   *http2.Framer
	w    h2Writer

	// Read side, of the read loop only.
	// maxStreamID is the highest stream the client opened: the read loop reads it freely and
	// changes it under mu (setMaxStreamID), so that others read it under mu.
	maxStreamID uint32
	sawSettings bool
	// recvWindow is what the client may still send on the connection: the read loop takes
	// from it, the streams give back what they read.
	recvWindow   atomic.Int64
	recvConsumed atomic.Int64 // bytes read by streams (or discarded) not yet given back

	mu        sync.Mutex // guards what follows
	streams   map[uint32]*h2Stream
	goingAway bool // a GOAWAY went out: no new stream is taken
	closing   bool // the connection is ending: every stream is being cut
	// resets are the last streams lb reset (or left unprocessed) that are no longer open:
	// the client may still send their frames, which are then discarded.
	resets    [16]uint32
	resetNext int

	handlers sync.WaitGroup // the streams' goroutines
}

// What lb's HTTP/2 server announces.
const (
	h2MaxStreams   = 250       // SETTINGS_MAX_CONCURRENT_STREAMS, as net/http's server
	h2StreamWindow = 256 << 10 // SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may have in flight
	h2ConnWindow   = 1 << 20   // the connection's window for request bodies
	h2GoAwayLinger = time.Second
	h2MaxFrameSize = 16 << 10 // SETTINGS_MAX_FRAME_SIZE, left at its default: a longer frame is an error
)

// serve runs the connection until the client closes it, an error, an idle timeout or
// shutdown.
func (hc *h2Conn) serve(headDeadline time.Time) {
	hc.fr = http2.NewFramer(io.Discard, hc.c)
	hc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	hc.fr.MaxHeaderListSize = uint32(max(hc.set.MaxHeaderBytes, 1))
	hc.fr.SetReuseFrames()
	hc.fr.SetMaxReadFrameSize(h2MaxFrameSize)
	hc.w.init(hc.c, hc.set.WriteTimeout)
	stop := make(chan struct{})
	go hc.w.run(stop)
	defer func() {
		hc.cutStreams()
		hc.handlers.Wait()
		hc.w.drain() // the last frames (a GOAWAY, resets), within write_timeout
		hc.w.fail(net.ErrClosed)
		close(stop)
		<-hc.w.done
	}()
	hc.recvWindow.Store(h2ConnWindow)
	_ = hc.c.SetReadDeadline(headDeadline) // the preface and SETTINGS, from the accept
	if !hc.readPreface() {
		return
	}
	hc.w.settings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: hc.fr.MaxHeaderListSize},
	)
	hc.w.windowUpdate(0, h2ConnWindow-65535)
	for {
		f, err := hc.fr.ReadFrame()
		if err != nil {
			if !hc.readFailed(err) {
				hc.sayGoodbye(err)
				return
			}
			continue
		}
		if !hc.sawSettings {
			sf, ok := f.(*http2.SettingsFrame)
			if !ok || sf.IsAck() {
				hc.connError(http2.ErrCodeProtocol)
				return
			}
			hc.sawSettings = true
			hc.armIdle()
		}
		if code, ok := hc.process(f); !ok {
			hc.connError(code)
			return
		}
	}
}

// readPreface reads the client's connection preface.
func (hc *h2Conn) readPreface() bool {
	var buf [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(hc.c, buf[:]); err != nil {
		return false
	}
	return string(buf[:]) == http2.ClientPreface
}

// readFailed handles an error of ReadFrame: a stream error resets that stream and the
// connection goes on (true); anything else ends the connection, with a GOAWAY for a
// connection error.
func (hc *h2Conn) readFailed(err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) {
		hc.noteStreamID(se.StreamID)
		if !hc.withStream(se.StreamID, func(st *h2Stream) { hc.resetStream(st, se.Code) }) {
			hc.refuse(se.StreamID, se.Code)
		}
		return true
	}
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		hc.connError(http2.ErrCode(ce))
	case errors.Is(err, http2.ErrFrameTooLarge):
		hc.connError(http2.ErrCodeFrameSize)
	}
	return false
}

// sayGoodbye sends a GOAWAY to a connection that reached its idle timeout, as net/http's
// server does, so that the client knows no request was lost.
func (hc *h2Conn) sayGoodbye(err error) {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return
	}
	hc.mu.Lock()
	idle := len(hc.streams) == 0 && !hc.goingAway
	hc.mu.Unlock()
	if idle {
		hc.w.goAway(hc.maxStreamID, http2.ErrCodeNo)
	}
}

// noteStreamID records a stream the client opened with a header block that failed.
func (hc *h2Conn) noteStreamID(id uint32) {
	if id%2 == 1 && id > hc.maxStreamID {
		hc.setMaxStreamID(id)
	}
}

// setMaxStreamID records the highest stream the client opened; of the read loop.
func (hc *h2Conn) setMaxStreamID(id uint32) {
	hc.mu.Lock()
	hc.maxStreamID = id
	hc.mu.Unlock()
}

// connError ends the connection with a GOAWAY carrying code, sent before the close.
func (hc *h2Conn) connError(code http2.ErrCode) {
	hc.w.goAway(hc.maxStreamID, code)
	hc.cutStreams()
	hc.w.drain()
}

// process handles one frame; false (with the code) for a connection error.
func (hc *h2Conn) process(f http2.Frame) (http2.ErrCode, bool) {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return hc.onHeaders(f)
	case *http2.DataFrame:
		return hc.onData(f)
	case *http2.SettingsFrame:
		return hc.onSettings(f)
	case *http2.WindowUpdateFrame:
		return hc.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		if f.StreamID > hc.maxStreamID {
			return http2.ErrCodeProtocol, false // an idle stream
		}
		hc.withStream(f.StreamID, func(st *h2Stream) {
			st.reset.Store(true)
			hc.w.closeSend(st)
			st.clientGone()
		})
	case *http2.PingFrame:
		if !f.IsAck() {
			hc.w.control(http2.FramePing, http2.FlagPingAck, 0, f.Data[:])
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			hc.w.rstStream(f.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.GoAwayFrame:
		hc.startGoAway() // the client opens no more streams: end once they are done
	case *http2.PushPromiseFrame:
		return http2.ErrCodeProtocol, false // a client must not push
	}
	return 0, true // unknown frames are ignored
}

// onData passes a DATA frame's payload to its stream's body.
func (hc *h2Conn) onData(f *http2.DataFrame) (http2.ErrCode, bool) {
	id, n := f.StreamID, int64(f.Length)
	if n > hc.recvWindow.Load() {
		return http2.ErrCodeFlowControl, false
	}
	hc.recvWindow.Add(-n)
	if id > hc.maxStreamID {
		return http2.ErrCodeProtocol, false // an idle stream
	}
	data := f.Data()
	found := hc.withStream(id, func(st *h2Stream) {
		if st.reset.Load() || st.remoteClosed() {
			hc.consumed(n) // a closed stream: refused, its bytes given back to the connection
			hc.resetStream(st, http2.ErrCodeStreamClosed)
			return
		}
		if pad := n - int64(len(data)); pad > 0 {
			hc.consumed(pad) // padding is flow controlled but never read
		}
		if code := st.body.put(data, n-int64(len(data)), f.StreamEnded()); code != 0 {
			hc.consumed(int64(len(data)))
			hc.resetStream(st, code)
		}
	})
	if !found {
		hc.consumed(n)
		hc.w.rstStream(id, http2.ErrCodeStreamClosed)
	}
	return 0, true
}

// withStream runs f with the open stream id under hc.mu, so that the stream cannot end (and
// be reused for another request) meanwhile; false if no such stream is open.
func (hc *h2Conn) withStream(id uint32, f func(*h2Stream)) bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	st := hc.streams[id]
	if st != nil {
		f(st)
	}
	return st != nil
}

// resetStream sends RST_STREAM with code for st and ends it on lb's side.
func (hc *h2Conn) resetStream(st *h2Stream, code http2.ErrCode) {
	st.reset.Store(true)
	st.resetByLB.Store(true)
	hc.w.closeSend(st)
	hc.w.rstStream(st.id, code)
	st.clientGone()
}

// armIdle gives the read loop the idle timeout while no stream is open, and none while one
// is; hc.mu must not be held.
func (hc *h2Conn) armIdle() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.armIdleLocked()
}

func (hc *h2Conn) armIdleLocked() {
	switch {
	case len(hc.streams) > 0:
		_ = hc.c.SetReadDeadline(time.Time{})
	case hc.goingAway:
		_ = hc.c.SetReadDeadline(time.Now().Add(h2GoAwayLinger))
	case hc.set.IdleTimeout > 0:
		_ = hc.c.SetReadDeadline(time.Now().Add(hc.set.IdleTimeout))
	default:
		_ = hc.c.SetReadDeadline(time.Time{})
	}
}

// startGoAway sends a GOAWAY that promises the streams opened so far and takes no new one;
// the connection closes once they are done (the read loop then reads a little longer, so that
// the client sees the last answers rather than a reset).
func (hc *h2Conn) startGoAway() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.goingAway {
		return
	}
	hc.goingAway = true
	hc.w.goAway(hc.maxStreamID, http2.ErrCodeNo) // the last stream it promises to serve
	hc.armIdleLocked()
}

// shutdown has the connection end once its streams are done: a GOAWAY, and an idle
// connection ends at once (its read loop stops; the GOAWAY goes out before the close).
func (hc *h2Conn) shutdown() {
	hc.startGoAway()
	hc.mu.Lock()
	if len(hc.streams) == 0 {
		_ = hc.c.SetReadDeadline(aLongTimeAgo)
	}
	hc.mu.Unlock()
}

// cutStreams ends every stream at once: the connection is closing.
func (hc *h2Conn) cutStreams() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.closing = true
	for _, st := range hc.streams {
		hc.w.closeSend(st)
		st.clientGone()
	}
}

// refuse resets a stream lb does not open, and remembers it.
func (hc *h2Conn) refuse(id uint32, code http2.ErrCode) {
	hc.w.rstStream(id, code)
	hc.rememberReset(id)
}

// rememberReset notes a stream lb reset or left unprocessed.
func (hc *h2Conn) rememberReset(id uint32) {
	hc.mu.Lock()
	hc.rememberResetLocked(id)
	hc.mu.Unlock()
}

func (hc *h2Conn) rememberResetLocked(id uint32) {
	hc.resets[hc.resetNext] = id
	hc.resetNext = (hc.resetNext + 1) % len(hc.resets)
}

// resetRecently reports whether id is one of the last streams lb reset.
func (hc *h2Conn) resetRecently(id uint32) bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	for _, r := range hc.resets {
		if r == id && id != 0 {
			return true
		}
	}
	return false
}

// endStream removes st once its goroutine is done with it.
func (hc *h2Conn) endStream(st *h2Stream) {
	hc.mu.Lock()
	delete(hc.streams, st.id)
	if st.resetByLB.Load() {
		hc.rememberResetLocked(st.id)
	}
	if len(hc.streams) == 0 {
		hc.armIdleLocked()
	}
	hc.mu.Unlock()
}
