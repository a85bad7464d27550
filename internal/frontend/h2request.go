package frontend

import (
	"bytes"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"outrigger/internal/h1"
)

// onHeaders opens a stream for a request's HEADERS, or ends a body with trailers.
func (hc *h2Conn) onHeaders(f *http2.MetaHeadersFrame) (http2.ErrCode, bool) {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ErrCodeProtocol, false
	}
	if id <= hc.maxStreamID {
		closed := false
		switch {
		case hc.withStream(id, func(st *h2Stream) { closed = hc.onTrailers(st, f) }) && !closed:
		case hc.resetRecently(id):
			// lb reset the stream (refused, malformed, past a GOAWAY, or answered before its
			// body ended) while the client was still sending it: discarded (RFC 9113 5.1).
		default:
			return http2.ErrCodeStreamClosed, false // a closed stream
		}
		return 0, true
	}
	hc.setMaxStreamID(id)
	if f.HasPriority() && f.Priority.StreamDep == id {
		hc.refuse(id, http2.ErrCodeProtocol) // depends on itself
		return 0, true
	}
	hc.mu.Lock()
	goingAway, closing, n := hc.goingAway, hc.closing, len(hc.streams)
	hc.mu.Unlock()
	switch {
	case goingAway || closing:
		hc.rememberReset(id)
		return 0, true // past the GOAWAY's last stream: not processed, the client may retry it
	case n >= h2MaxStreams:
		hc.refuse(id, http2.ErrCodeRefusedStream)
		return 0, true
	}
	st := hc.srv.newStream(hc, id)
	if !st.parse(f) {
		hc.srv.streams.Put(st)
		hc.refuse(id, http2.ErrCodeProtocol) // malformed (RFC 9113 8.1.1)
		return 0, true
	}
	hc.mu.Lock()
	hc.streams[id] = st
	if len(hc.streams) == 1 {
		hc.armIdleLocked()
	}
	hc.mu.Unlock()
	hc.handlers.Add(1)
	hc.srv.start(st)
	return 0, true
}

// onTrailers ends a request body with its trailer fields (which are not forwarded: lb sends
// the body on with a length or chunked without trailers).
func (hc *h2Conn) onTrailers(st *h2Stream, f *http2.MetaHeadersFrame) (closed bool) {
	hc.w.mu.Lock()
	answered := st.sendState == h2SendEnded
	hc.w.mu.Unlock()
	switch {
	case answered && !st.reset.Load() && st.remoteClosed():
		return true // closed both ways, only not yet forgotten: as a closed stream
	case st.reset.Load() || st.remoteClosed():
		hc.resetStream(st, http2.ErrCodeStreamClosed)
	case !f.StreamEnded() || len(f.PseudoFields()) > 0:
		hc.resetStream(st, http2.ErrCodeProtocol) // trailers end the stream, without pseudo-fields
	default:
		if code := st.body.put(nil, 0, true); code != 0 {
			hc.resetStream(st, code)
		}
	}
	return false
}

// newStream returns a stream from the pool, reset for id.
func (s *h2Server) newStream(hc *h2Conn, id uint32) *h2Stream {
	st, _ := s.streams.Get().(*h2Stream)
	if st == nil {
		st = &h2Stream{}
		st.body.notify = make(chan struct{}, 1)
	}
	st.hc, st.id = hc, id
	st.fields, st.method, st.target, st.authority = nil, "", "", ""
	st.declared, st.noBody, st.tooLarge, st.begin = -1, false, false, time.Now()
	hc.w.mu.Lock()
	st.sendWindow, st.sendState = hc.w.initialWindow, h2SendOpen
	hc.w.mu.Unlock()
	st.bodyless, st.left, st.aborted, st.failed = false, -1, false, false
	st.aborter = nil
	st.gone.Store(false)
	st.reset.Store(false)
	st.resetByLB.Store(false)
	st.body.reset(st)
	return st
}

// parse checks a request's header block as RFC 9113 8.1-8.3 wants it; false for a malformed
// request. What lb itself refuses (CONNECT, a target or host h1 would not take) is answered
// 400 by the stream's goroutine.
func (st *h2Stream) parse(f *http2.MetaHeadersFrame) bool {
	var scheme string
	path := false
	for _, p := range f.PseudoFields() {
		switch p.Name {
		case ":method":
			st.method = p.Value
		case ":path":
			st.target, path = p.Value, true
		case ":scheme":
			scheme = p.Value
		case ":authority":
			st.authority = p.Value
		default:
			return false // :protocol (lb offers no extended CONNECT), or a response's :status
		}
	}
	if f.Truncated {
		// Longer than max_header_bytes (HPACK stopped giving fields): answered 431.
		st.tooLarge, st.noBody, st.body.ended = true, f.StreamEnded(), f.StreamEnded()
		return true
	}
	if st.method == "" || st.method != "CONNECT" && (scheme == "" || !path || st.target == "") {
		return false
	}
	for _, hf := range f.RegularFields() {
		switch {
		case isConnectionSpecific(hf.Name):
			return false
		case hf.Name == "te" && hf.Value != "trailers":
			return false
		case hf.Name == "expect" && strings.EqualFold(hf.Value, "100-continue"):
			st.body.expect = !f.StreamEnded()
		case hf.Name == "content-length":
			n, ok := parseContentLength(hf.Value)
			if !ok || st.declared >= 0 && n != st.declared {
				return false
			}
			st.declared = n
		}
	}
	st.fields = f.RegularFields()
	st.noBody = f.StreamEnded()
	if st.noBody && st.declared > 0 {
		return false // a length that no DATA can match
	}
	st.body.declared = st.declared
	st.body.ended = st.noBody
	return true
}

// parseContentLength parses a content-length value: digits only.
func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

// h2Target returns the target a backend gets from :path, as originTarget does for net/http.
func h2Target(method, t string) (string, bool) {
	if method == "CONNECT" {
		return "", true
	}
	if t == "*" {
		return t, method == "OPTIONS"
	}
	return t, t != "" && t[0] == '/' && h1.ValidOrigin(t)
}

// isConnectionSpecific reports whether name is a field HTTP/2 forbids (RFC 9113 8.2.2).
func isConnectionSpecific(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// joinCookies joins the values of an HTTP/2 request's cookie fields as HTTP/1.1 wants them
// (RFC 9113 8.2.3).
func joinCookies(buf *bytes.Buffer, v string) {
	if buf.Len() > 0 {
		buf.WriteString("; ")
	}
	buf.WriteString(v)
}
