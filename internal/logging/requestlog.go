package logging

import (
	"context"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// RequestRecord is one request's access-log line: the fields Middleware logs,
// then lb's.
type RequestRecord struct {
	Method, Path string
	Status       int
	Duration     time.Duration
	ClientIP     netip.Addr // the zero Addr is logged as ""
	RequestID    string
	Bytes        int64
	Backend      string // logged always (lb logs "" when no backend answered)
	Attempts     int    // logged always
	Broken       bool   // "broken": true, only when true
	Aborted      bool   // "aborted": true, only when true
}

// RequestLog writes RequestRecords exactly as Middleware and the proxy's
// Annotate calls write their line: msg "request", then method, path, status,
// duration (seconds), client_ip, request_id, bytes, backend, attempts, and
// broken and aborted when true, at level Info.
//
// For a JSON logger made by New it formats the line itself, without
// allocating, byte for byte as slog's JSONHandler would; for any other logger
// it calls LogAttrs. It is safe for concurrent use.
type RequestLog struct {
	logger *slog.Logger
	json   *jsonHandler // nil unless logger is one of New's JSON loggers
	now    func() time.Time
	bufs   sync.Pool // of *[]byte
}

// Sizes of the line buffers RequestLog keeps: the capacity of a new one, and
// the largest it puts back (a huge path should not pin its buffer).
const (
	lineBufSize    = 512
	maxPooledLine  = 64 << 10
	requestMessage = "request"
)

// NewRequestLog returns a RequestLog writing to logger (nil: nowhere).
func NewRequestLog(logger *slog.Logger) *RequestLog {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &RequestLog{logger: logger, now: time.Now}
	l.json, _ = logger.Handler().(*jsonHandler)
	l.bufs.New = func() any {
		b := make([]byte, 0, lineBufSize)
		return &b
	}
	return l
}

// Log writes rec's line, if the logger logs at level Info.
func (l *RequestLog) Log(rec *RequestRecord) {
	ctx := context.Background()
	if !l.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if l.json == nil {
		var buf [11]slog.Attr
		l.logger.LogAttrs(ctx, slog.LevelInfo, requestMessage, appendRequestAttrs(buf[:0], rec)...)
		return
	}
	t := l.now().Round(0) // as slog does: no monotonic reading
	if y := t.Year(); y < 0 || y >= 10000 {
		// slog adds an error to such a time; let it write the line.
		var buf [11]slog.Attr
		r := slog.NewRecord(t, slog.LevelInfo, requestMessage, 0)
		r.AddAttrs(appendRequestAttrs(buf[:0], rec)...)
		_ = l.json.Handle(ctx, r)
		return
	}
	bp := l.bufs.Get().(*[]byte)
	b := appendRequestJSON((*bp)[:0], t, rec)
	_, _ = l.json.w.Write(b) // slog drops write errors as well
	if cap(b) <= maxPooledLine {
		*bp = b
		l.bufs.Put(bp)
	}
}

// appendRequestAttrs appends rec's fields as the attributes Middleware and
// the proxy log.
func appendRequestAttrs(attrs []slog.Attr, rec *RequestRecord) []slog.Attr {
	client := ""
	if rec.ClientIP.IsValid() {
		client = rec.ClientIP.String()
	}
	attrs = append(attrs,
		slog.String("method", rec.Method),
		slog.String("path", rec.Path),
		slog.Int("status", rec.Status),
		slog.Float64("duration", rec.Duration.Seconds()),
		slog.String("client_ip", client),
		slog.String("request_id", rec.RequestID),
		slog.Int64("bytes", rec.Bytes),
		slog.String("backend", rec.Backend),
		slog.Int("attempts", rec.Attempts),
	)
	if rec.Broken {
		attrs = append(attrs, slog.Bool("broken", true))
	}
	if rec.Aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	return attrs
}

// appendRequestJSON appends the line slog's JSONHandler writes for rec at
// time t (whose year is in [0, 9999]), newline included.
func appendRequestJSON(b []byte, t time.Time, rec *RequestRecord) []byte {
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`+requestMessage+`","method":"`...)
	b = appendJSONString(b, rec.Method)
	b = append(b, `","path":"`...)
	b = appendJSONString(b, rec.Path)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = append(b, `,"duration":`...)
	b = appendJSONFloat(b, rec.Duration.Seconds())
	b = append(b, `,"client_ip":"`...)
	b = appendJSONAddr(b, rec.ClientIP)
	b = append(b, `","request_id":"`...)
	b = appendJSONString(b, rec.RequestID)
	b = append(b, `","bytes":`...)
	b = strconv.AppendInt(b, rec.Bytes, 10)
	b = append(b, `,"backend":"`...)
	b = appendJSONString(b, rec.Backend)
	b = append(b, `","attempts":`...)
	b = strconv.AppendInt(b, int64(rec.Attempts), 10)
	if rec.Broken {
		b = append(b, `,"broken":true`...)
	}
	if rec.Aborted {
		b = append(b, `,"aborted":true`...)
	}
	return append(b, "}\n"...)
}

// appendJSONAddr appends a's text as the inside of a JSON string; the zero
// Addr is "".
func appendJSONAddr(b []byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return b
	case a.Zone() == "":
		return a.AppendTo(b) // digits, letters, ':' and '.' need no escaping
	default:
		return appendJSONString(b, a.String())
	}
}

// appendJSONFloat appends f as encoding/json (and so slog) writes a float64:
// the shortest representation, in exponent form only below 1e-6 or from 1e21
// on, with the exponent not padded ("1e-9"). f must be finite.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s escaped as slog's JSONHandler escapes strings
// (encoding/json without HTML escaping), without the quotes: '"' and '\\'
// backslashed, \n \r \t as such, other control characters as \u00XX, bytes
// of invalid UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}
