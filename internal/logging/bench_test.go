package logging

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkMiddleware measures the cost the request log adds to every request
// (JSON line to io.Discard, a generated request id, one annotation).
func BenchmarkMiddleware(b *testing.B) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	peer := netip.MustParseAddr("127.0.0.1")
	h := Middleware(logger, func(*http.Request) netip.Addr { return peer })(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Annotate(r.Context(), slog.String("backend", "app-1"))
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest("GET", "/api/me", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		req.Header.Del(RequestIDHeader)
		h.ServeHTTP(w, req)
	}
}

// BenchmarkRequestLog compares RequestLog's own JSON line (fast) with the
// same line written through slog's LogAttrs (slog), both to io.Discard.
func BenchmarkRequestLog(b *testing.B) {
	fast, err := New(io.Discard, Options{Format: "json"})
	if err != nil {
		b.Fatal(err)
	}
	loggers := []struct {
		name   string
		logger *slog.Logger
	}{
		{"fast", fast},
		{"slog", slog.New(slog.NewJSONHandler(io.Discard, nil))},
	}
	rec := RequestRecord{
		Method: "GET", Path: "/api/me", Status: 200, Duration: 1234567 * time.Nanosecond,
		ClientIP: netip.MustParseAddr("198.51.100.9"), RequestID: "ABCDEFGHIJKLMNOP-1a",
		Bytes: 1432, Backend: "app-1", Attempts: 1,
	}
	for _, lg := range loggers {
		b.Run(lg.name, func(b *testing.B) {
			l := NewRequestLog(lg.logger)
			b.ReportAllocs()
			for b.Loop() {
				l.Log(&rec)
			}
		})
	}
}
