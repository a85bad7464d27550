package frontend

// This file is the HTTP/2 connection's settings and flow control: what the client sets, the
// windows toward the client it grows, and the window toward lb given back as bodies are read.

import (
	"errors"

	"golang.org/x/net/http2"
)

// onSettings applies the client's settings and acknowledges them.
func (hc *h2Conn) onSettings(f *http2.SettingsFrame) (http2.ErrCode, bool) {
	if f.IsAck() {
		return 0, true
	}
	code, ok := http2.ErrCode(0), true
	_ = f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				code = http2.ErrCode(ce)
			} else {
				code = http2.ErrCodeProtocol
			}
			ok = false
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			hc.w.mu.Lock()
			hc.w.enc.SetMaxDynamicTableSizeLimit(s.Val)
			hc.w.mu.Unlock()
		case http2.SettingMaxFrameSize:
			hc.w.mu.Lock()
			hc.w.maxFrame = int(s.Val)
			hc.w.mu.Unlock()
		case http2.SettingInitialWindowSize:
			if !hc.setInitialWindow(int32(s.Val)) {
				code, ok = http2.ErrCodeFlowControl, false
				return errors.New("window overflow")
			}
		}
		return nil
	})
	if !ok {
		return code, false
	}
	hc.w.control(http2.FrameSettings, http2.FlagSettingsAck, 0)
	return 0, true
}

// setInitialWindow applies a new SETTINGS_INITIAL_WINDOW_SIZE to every open stream's send
// window; false if one would pass 2^31-1.
func (hc *h2Conn) setInitialWindow(v int32) bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	w := &hc.w
	w.mu.Lock()
	defer w.mu.Unlock()
	delta := int64(v) - int64(w.initialWindow)
	w.initialWindow = v
	for _, st := range hc.streams {
		n := int64(st.sendWindow) + delta
		if n > 1<<31-1 {
			return false
		}
		st.sendWindow = int32(n)
	}
	w.cond.Broadcast()
	return true
}

// onWindowUpdate grows a send window.
func (hc *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) (http2.ErrCode, bool) {
	if f.StreamID == 0 {
		if !hc.w.grow(nil, f.Increment) {
			return http2.ErrCodeFlowControl, false
		}
		return 0, true
	}
	if f.StreamID > hc.maxStreamID {
		return http2.ErrCodeProtocol, false // an idle stream
	}
	hc.withStream(f.StreamID, func(st *h2Stream) {
		if !hc.w.grow(st, f.Increment) {
			hc.resetStream(st, http2.ErrCodeFlowControl)
		}
	})
	return 0, true
}

// consumed gives n bytes of the connection's window back to the client once a quarter of
// it has been read (or discarded). Any goroutine may call it.
func (hc *h2Conn) consumed(n int64) {
	v := hc.recvConsumed.Add(n)
	if v < h2ConnWindow/4 || !hc.recvConsumed.CompareAndSwap(v, 0) {
		return // little yet, or a later caller gives back the sum
	}
	hc.recvWindow.Add(v) // before the update: the client may send at once
	hc.w.windowUpdate(0, uint32(v))
}
