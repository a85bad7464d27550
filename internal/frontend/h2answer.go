package frontend

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"

	"outrigger/internal/balancer"
	"outrigger/internal/h1"
)

// This file is the answer side of an HTTP/2 stream (balancer.Client): a head becomes a
// header block with lower-case names, a body DATA frames, trailer fields a last header block.

// Interim sends an interim (1xx) head.
func (st *h2Stream) Interim(h *balancer.ResponseHead) error {
	st.resp = st.headFields(st.resp[:0], h, -1)
	return st.check(st.hc.w.headers(st, st.resp, false))
}

// Start sends the head of the answer: the backend's length as content-length, END_STREAM at
// once when no body follows.
func (st *h2Stream) Start(h *balancer.ResponseHead) error {
	st.bodyless = h.Bodyless || h.Code == http.StatusSwitchingProtocols
	length := int64(-1)
	switch {
	case st.bodyless:
		if h.Length >= 0 && h.Code != 204 && h.Code >= 200 {
			length = h.Length // what a GET would have had (HEAD, 304)
		}
	case h.Length >= 0:
		length = h.Length
	}
	st.left = -1
	if !st.bodyless {
		st.left = h.Length
	}
	if st.hc.srv.l.closeAfterAnswer() {
		// This answer is the connection's last: the GOAWAY goes out ahead of it, so that the
		// client sends its next request on a new connection.
		st.hc.startGoAway()
	}
	st.resp = st.headFields(st.resp[:0], h, length)
	return st.check(st.hc.w.headers(st, st.resp, st.bodyless || st.left == 0))
}

// Write sends body bytes; the frame that completes a body of known length ends the stream.
func (st *h2Stream) Write(p []byte) error {
	if st.bodyless || len(p) == 0 {
		return nil
	}
	end := false
	if st.left >= 0 {
		if int64(len(p)) > st.left {
			p = p[:st.left] // never more than the content-length the client was told
		}
		st.left -= int64(len(p))
		end = st.left == 0
	}
	return st.check(st.hc.w.data(st, p, end))
}

// Finish ends the body: with the trailer fields of a chunked answer as a last header block,
// else with an empty END_STREAM frame unless the stream ended already.
func (st *h2Stream) Finish(trailers []h1.Field) error {
	w := &st.hc.w
	w.mu.Lock()
	ended := st.sendState != h2SendOpen
	w.mu.Unlock()
	if ended || st.bodyless {
		return st.err()
	}
	if len(trailers) > 0 {
		st.resp = st.resp[:0]
		for i := range trailers {
			f := &trailers[i]
			st.resp = append(st.resp, hpack.HeaderField{Name: lowerName(f), Value: string(f.Value)})
		}
		return st.check(w.headers(st, st.resp, true))
	}
	return st.check(w.data(st, nil, true))
}

// check notes a failed write: the client is gone for the forwarding loop.
func (st *h2Stream) check(err error) error {
	if err != nil {
		st.failed = true
		return errClientGone
	}
	return nil
}

// headFields appends the header block of h: :status, the backend's fields that the table let
// through (lower-cased), content-length when length >= 0, date when the backend sent none,
// and what lb adds. The values are pieces of one string, so a head costs few allocations.
func (st *h2Stream) headFields(dst []hpack.HeaderField, h *balancer.ResponseHead, length int64) []hpack.HeaderField {
	dst = append(dst, hpack.HeaderField{Name: ":status", Value: balancer.CodeText(h.Code)})
	b := st.scratch[:0]
	for i := range h.Fields {
		b = append(b, h.Fields[i].Value...)
	}
	st.scratch = b
	values := string(b)
	at := 0
	for i := range h.Fields {
		f := &h.Fields[i]
		v := values[at : at+len(f.Value)]
		at += len(f.Value)
		name := lowerName(f)
		// A cookie is never put in HPACK's table, where a later answer's compressed size
		// could tell a guess of it (RFC 7541 7.1.3).
		dst = append(dst, hpack.HeaderField{Name: name, Value: v, Sensitive: name == "set-cookie"})
	}
	if h.Code >= 200 {
		if length >= 0 {
			dst = append(dst, hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(length, 10)})
		}
		if !h.HasDate {
			dst = append(dst, hpack.HeaderField{Name: "date", Value: st.hc.srv.dates.now()})
		}
	}
	if h.RequestID != "" {
		// Unique per request: indexing it would only evict what later answers repeat.
		dst = append(dst, hpack.HeaderField{Name: "x-request-id", Value: h.RequestID, Sensitive: true})
	}
	if h.HSTS != "" {
		dst = append(dst, hpack.HeaderField{Name: "strict-transport-security", Value: h.HSTS})
	}
	return dst
}

// lowerName is f's name in lower case, as HTTP/2 sends it, without allocating for the usual
// fields.
func lowerName(f *h1.Field) string {
	if k := f.Kind.LowerName(); k != "" {
		return k
	}
	switch string(f.Name) {
	case "Content-Type":
		return "content-type"
	case "Cache-Control":
		return "cache-control"
	case "Etag", "ETag":
		return "etag"
	case "Last-Modified":
		return "last-modified"
	case "Set-Cookie":
		return "set-cookie"
	case "Location":
		return "location"
	case "Vary":
		return "vary"
	case "X-Instance":
		return "x-instance"
	}
	return strings.ToLower(string(f.Name))
}

// dateStrings formats the current time for a date field, once per second.
type dateStrings struct {
	cur atomic.Pointer[dateString]
}

type dateString struct {
	unix int64
	text string
}

func (d *dateStrings) now() string {
	now := time.Now()
	if e := d.cur.Load(); e != nil && e.unix == now.Unix() {
		return e.text
	}
	e := &dateString{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	d.cur.Store(e)
	return e.text
}
