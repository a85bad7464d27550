package logging

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RequestIDHeader is the header that carries a request's id from the client
// through lb to the app.
const RequestIDHeader = "X-Request-Id"

type ctxKey struct{}

// entry is the part of a request's log line that handlers can add to.
type entry struct {
	requestID string
	mu        sync.Mutex
	attrs     []slog.Attr
	status    int
}

// MiddlewareOption tunes Middleware.
type MiddlewareOption func(*middlewareConfig)

type middlewareConfig struct {
	skip func(*http.Request, int) bool
}

// SkipIf leaves out the log line of a request for which skip returns true,
// given the status it was answered with (for example a health check whose
// result did not change).
func SkipIf(skip func(r *http.Request, status int) bool) MiddlewareOption {
	return func(c *middlewareConfig) { c.skip = skip }
}

// Middleware returns a handler wrapper that writes one line per request:
// msg "request" with method, path, status, duration (seconds), client_ip,
// request_id, bytes and whatever the handler added with Annotate.
//
// It makes sure the request has a valid X-Request-ID (the client's own when it
// matches [A-Za-z0-9._-]{1,128}, else a new one, set on r.Header so that a
// proxy passes it on) and echoes it on the response.
func Middleware(logger *slog.Logger, clientIP func(*http.Request) netip.Addr, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	var cfg middlewareConfig
	for _, o := range opts {
		o(&cfg)
	}
	ids := NewRequestIDs()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get(RequestIDHeader)
			if !ValidRequestID(id) {
				id = ids.Next()
				r.Header.Set(RequestIDHeader, id)
			}
			e := &entry{requestID: id}
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, e))
			rec := &recorder{ResponseWriter: w, requestID: id}
			defer func() {
				// A handler that aborts its response (panic(http.ErrAbortHandler),
				// as a proxy does when a backend dies mid-body) still gets its
				// line, marked aborted; the panic then goes on to net/http.
				if p := recover(); p != nil {
					e.add(slog.Bool("aborted", true))
					cfg.log(logger, clientIP, r, rec, e, start)
					panic(p)
				}
			}()
			next.ServeHTTP(rec, r)
			if rec.status == 0 {
				rec.stamp() // nothing written: net/http sends the header after we return
			}
			cfg.log(logger, clientIP, r, rec, e, start)
		})
	}
}

// log writes the request's line unless it is to be skipped.
func (cfg *middlewareConfig) log(logger *slog.Logger, clientIP func(*http.Request) netip.Addr, r *http.Request, rec *recorder, e *entry, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	e.mu.Lock()
	if e.status != 0 {
		status = e.status
	}
	extra := e.attrs
	e.mu.Unlock()
	if cfg.skip != nil && cfg.skip(r, status) {
		return
	}
	client := ""
	if clientIP != nil {
		if a := clientIP(r); a.IsValid() {
			client = a.String()
		}
	}
	attrs := make([]slog.Attr, 0, 7+len(extra))
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Float64("duration", time.Since(start).Seconds()),
		slog.String("client_ip", client),
		slog.String("request_id", e.requestID),
		slog.Int64("bytes", rec.bytes),
	)
	attrs = append(attrs, extra...)
	logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// ValidRequestID reports whether id may be used as a request id as it is.
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// RequestID returns the id of the request whose context is ctx, or "".
func RequestID(ctx context.Context) string {
	if e, ok := ctx.Value(ctxKey{}).(*entry); ok {
		return e.requestID
	}
	return ""
}

// Annotate adds attributes to the log line of the request whose context is
// ctx. Outside Middleware it does nothing.
func Annotate(ctx context.Context, attrs ...slog.Attr) {
	if e, ok := ctx.Value(ctxKey{}).(*entry); ok {
		e.add(attrs...)
	}
}

func (e *entry) add(attrs ...slog.Attr) {
	e.mu.Lock()
	e.attrs = append(e.attrs, attrs...)
	e.mu.Unlock()
}

// SetStatus makes the log line show code instead of the status written (499
// for a client that went away, say).
func SetStatus(ctx context.Context, code int) {
	if e, ok := ctx.Value(ctxKey{}).(*entry); ok {
		e.mu.Lock()
		e.status = code
		e.mu.Unlock()
	}
}

// RequestIDs makes request ids for requests that bring none (or an invalid
// one): a random prefix per source and a counter.
type RequestIDs struct {
	prefix string
	n      atomic.Uint64
}

// NewRequestIDs returns a source with a fresh random prefix.
func NewRequestIDs() *RequestIDs {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &RequestIDs{prefix: base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])}
}

// Next returns a new id, "PREFIX-N" with N counting up in base 36. It is safe
// for concurrent use.
func (s *RequestIDs) Next() string {
	var buf [48]byte
	b := append(buf[:0], s.prefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, s.n.Add(1), 36)
	return string(b)
}

// recorder remembers the status and size of a response, and stamps the
// request id on it as the header goes out (replacing any copy a proxied
// backend sent, so the client sees exactly one). Unwrap lets
// http.ResponseController reach the connection (Flush, Hijack, deadlines).
type recorder struct {
	http.ResponseWriter
	requestID string
	status    int
	bytes     int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 || (r.status >= 100 && r.status < 200 && r.status != http.StatusSwitchingProtocols) {
		r.stamp()
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.stamp()
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// stamp sets the request id header before the response header is sent.
func (r *recorder) stamp() {
	r.ResponseWriter.Header()[RequestIDHeader] = []string{r.requestID}
}

// Unwrap returns the wrapped ResponseWriter.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush sends buffered data to the client, for handlers that assert http.Flusher.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.stamp()
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack takes over the connection, for handlers that assert http.Hijacker.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}
