package logging

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
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
