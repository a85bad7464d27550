package h1

import (
	"net/http"
	"sync/atomic"
	"time"
)

// DateCache formats the current time for a Date field, at most once per second. It is safe
// for concurrent use, and its zero value is ready to use.
type DateCache struct {
	last atomic.Pointer[dateEntry]
}

// dateEntry is one second's Date value; it is never changed once stored.
type dateEntry struct {
	unix int64
	text [len(http.TimeFormat)]byte
}

// Append appends now in http.TimeFormat ("Mon, 02 Jan 2006 15:04:05 GMT") to dst.
func (d *DateCache) Append(dst []byte, now time.Time) []byte {
	sec := now.Unix()
	e := d.last.Load()
	switch {
	case e != nil && e.unix == sec:
		return append(dst, e.text[:]...)
	case e != nil && e.unix > sec:
		// An earlier second than the cached one (a caller that read the clock just
		// before another): format it without going back.
		return now.UTC().AppendFormat(dst, http.TimeFormat)
	}
	e = &dateEntry{unix: sec}
	if s := now.UTC().AppendFormat(e.text[:0], http.TimeFormat); len(s) != len(e.text) {
		return append(dst, s...) // a year outside 1000-9999: not worth caching
	}
	d.last.Store(e)
	return append(dst, e.text[:]...)
}
