package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// slogLine is the oracle: the line slog's own JSONHandler writes for rec at
// time t, with the attributes built here independently of RequestLog.
func slogLine(t *testing.T, at time.Time, rec RequestRecord, opts *slog.HandlerOptions) string {
	t.Helper()
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, opts)
	client := ""
	if rec.ClientIP.IsValid() {
		client = rec.ClientIP.String()
	}
	r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	r.AddAttrs(
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
		r.AddAttrs(slog.Bool("broken", true))
	}
	if rec.Aborted {
		r.AddAttrs(slog.Bool("aborted", true))
	}
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatalf("slog Handle: %v", err)
	}
	return buf.String()
}

// fastLine is the line RequestLog writes for rec through a JSON logger from
// New, its clock stopped at at.
func fastLine(t *testing.T, at time.Time, rec RequestRecord) string {
	t.Helper()
	var buf bytes.Buffer
	logger, err := New(&buf, Options{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	l := NewRequestLog(logger)
	if l.json == nil {
		t.Fatal("RequestLog on New's JSON logger has no fast path")
	}
	l.now = func() time.Time { return at }
	l.Log(&rec)
	return buf.String()
}

var (
	testTimes = []time.Time{
		time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("", 2*3600)),
		time.Date(2025, 12, 31, 23, 59, 59, 120000000, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(9*3600+30*60))),
		time.Now(), // with a monotonic reading, which slog strips
	}
	base = RequestRecord{
		Method: "GET", Path: "/api/me", Status: 200, Duration: 1234567 * time.Nanosecond,
		ClientIP: netip.MustParseAddr("198.51.100.9"), RequestID: "ABCDEFGHIJKLMNOP-1",
		Bytes: 15, Backend: "app-1", Attempts: 1,
	}
)

func with(f func(*RequestRecord)) RequestRecord {
	r := base
	f(&r)
	return r
}

func TestRequestLogMatchesSlog(t *testing.T) {
	tests := []struct {
		name string
		rec  RequestRecord
	}{
		{"plain", base},
		{"zero record", RequestRecord{}},
		{"quotes and backslashes", with(func(r *RequestRecord) { r.Path = `/a"b\c\"d` })},
		{"control characters", with(func(r *RequestRecord) { r.Path = "/\x00\x01\x07\b\f\n\r\t\x1b\x1f\x7f end" })},
		{"html characters", with(func(r *RequestRecord) { r.Path = "/<script>&amp;</script>" })},
		{"invalid UTF-8", with(func(r *RequestRecord) { r.Path = "/\xff\xfe\xc3(\xe2\x82 ok\xed\xa0\x80" })},
		{"line and paragraph separators", with(func(r *RequestRecord) { r.Path = "/a\u2028b\u2029c\u2027\u202a" })},
		{"valid non-ASCII", with(func(r *RequestRecord) { r.Path = "/héllo/日本/\U0001F600/\ufffd" })},
		{"odd method and id", with(func(r *RequestRecord) { r.Method = "M\"\\\n"; r.RequestID = "\t\u2029" })},
		{"empty strings", with(func(r *RequestRecord) { r.Method, r.Path, r.RequestID, r.Backend = "", "", "", "" })},
		{"zero client address", with(func(r *RequestRecord) { r.ClientIP = netip.Addr{} })},
		{"IPv6 client", with(func(r *RequestRecord) { r.ClientIP = netip.MustParseAddr("2001:db8::1") })},
		{"IPv4-mapped client", with(func(r *RequestRecord) { r.ClientIP = netip.MustParseAddr("::ffff:192.0.2.1") })},
		{"zoned client", with(func(r *RequestRecord) { r.ClientIP = netip.MustParseAddr("fe80::1%eth\"0") })},
		{"duration 0", with(func(r *RequestRecord) { r.Duration = 0 })},
		{"duration 1ns", with(func(r *RequestRecord) { r.Duration = time.Nanosecond })},
		{"duration 999ns", with(func(r *RequestRecord) { r.Duration = 999 })},
		{"duration 1µs", with(func(r *RequestRecord) { r.Duration = time.Microsecond })},
		{"duration 1.5µs", with(func(r *RequestRecord) { r.Duration = 1500 })},
		{"duration 123ms", with(func(r *RequestRecord) { r.Duration = 123 * time.Millisecond })},
		{"duration 2.5s", with(func(r *RequestRecord) { r.Duration = 2500 * time.Millisecond })},
		{"duration 1h", with(func(r *RequestRecord) { r.Duration = time.Hour })},
		{"duration max", with(func(r *RequestRecord) { r.Duration = 1<<63 - 1 })},
		{"duration negative", with(func(r *RequestRecord) { r.Duration = -3 })},
		{"no backend", with(func(r *RequestRecord) { r.Status, r.Backend, r.Attempts = 502, "", 0 })},
		{"large numbers", with(func(r *RequestRecord) { r.Status, r.Bytes, r.Attempts = -1, 1<<63-1, 1<<40 })},
		{"broken", with(func(r *RequestRecord) { r.Broken = true })},
		{"aborted", with(func(r *RequestRecord) { r.Aborted = true })},
		{"broken and aborted", with(func(r *RequestRecord) { r.Broken, r.Aborted = true, true })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, at := range testTimes {
				got, want := fastLine(t, at, tc.rec), slogLine(t, at, tc.rec, nil)
				if got != want {
					t.Errorf("time %v:\ngot  %q,\nwant %q", at, got, want)
				}
			}
			// The fallback (any other logger) must log the same attributes;
			// its clock cannot be stopped, so both sides drop the time.
			noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}
			var buf bytes.Buffer
			rec := tc.rec
			NewRequestLog(slog.New(slog.NewJSONHandler(&buf, noTime))).Log(&rec)
			if got, want := buf.String(), slogLine(t, time.Time{}, tc.rec, noTime); got != want {
				t.Errorf("fallback:\ngot  %q,\nwant %q", got, want)
			}
		})
	}
}

// TestRequestLogMatchesMiddleware checks that a RequestRecord logs the line
// Middleware and the proxy's Annotate calls write (time and duration aside).
func TestRequestLogMatchesMiddleware(t *testing.T) {
	fixed := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey:
			return slog.Attr{}
		case "duration":
			return slog.Float64("duration", 0)
		}
		return a
	}}
	tests := []struct {
		name            string
		backend         string
		attempts        int
		broken, aborted bool
	}{
		{"answered", "app-1", 1, false, false},
		{"no backend", "", 0, false, false},
		{"retried then broken", "app-2", 2, true, true},
		{"client left mid-body", "app-1", 1, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mw bytes.Buffer
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusTeapot)
				io.WriteString(w, "short")
				Annotate(r.Context(), slog.String("backend", tc.backend), slog.Int("attempts", tc.attempts))
				if tc.broken {
					Annotate(r.Context(), slog.Bool("broken", true))
				}
				if tc.aborted {
					panic(http.ErrAbortHandler)
				}
			})
			req := httptest.NewRequest("POST", "/up?x=1", nil)
			req.Header.Set(RequestIDHeader, "id-1")
			clientIP := func(*http.Request) netip.Addr { return netip.MustParseAddr("2001:db8::7") }
			func() {
				defer func() { _ = recover() }()
				Middleware(slog.New(slog.NewJSONHandler(&mw, fixed)), clientIP)(h).ServeHTTP(httptest.NewRecorder(), req)
			}()

			var rl bytes.Buffer
			NewRequestLog(slog.New(slog.NewJSONHandler(&rl, fixed))).Log(&RequestRecord{
				Method: "POST", Path: "/up", Status: http.StatusTeapot, ClientIP: netip.MustParseAddr("2001:db8::7"),
				RequestID: "id-1", Bytes: 5, Backend: tc.backend, Attempts: tc.attempts, Broken: tc.broken, Aborted: tc.aborted,
			})
			if got, want := rl.String(), mw.String(); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func FuzzRequestLogMatchesSlog(f *testing.F) {
	f.Add("GET", "/api/me", "abc-1", "app-1", int64(123456789))
	f.Add("", "", "", "", int64(0))
	f.Add("P\"OST", "/\x00\xff\u2028<&>", "\\", "\t", int64(1))
	f.Add("GET", "/\xed\xa0\x80\xf4\x90\x80\x80", "é", "x", int64(-1500))
	f.Add("GET", "/", "x", "y", int64(1<<63-1))
	at := testTimes[0]
	f.Fuzz(func(t *testing.T, method, path, id, backend string, d int64) {
		rec := with(func(r *RequestRecord) {
			r.Method, r.Path, r.RequestID, r.Backend, r.Duration = method, path, id, backend, time.Duration(d)
			r.Broken = d&1 == 1
			r.Aborted = d&2 == 2
		})
		if got, want := fastLine(t, at, rec), slogLine(t, at, rec, nil); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func TestRequestLogFallsBack(t *testing.T) {
	rec := with(func(r *RequestRecord) { r.Broken = true })
	want := []string{"request", "method=GET", "path=/api/me", "status=200", "duration=0.001234567",
		"client_ip=198.51.100.9", "request_id=ABCDEFGHIJKLMNOP-1", "bytes=15", "backend=app-1", "attempts=1", "broken=true"}

	var text bytes.Buffer
	logger, err := New(&text, Options{Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	NewRequestLog(logger).Log(&rec)
	for _, w := range want {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text line %q lacks %q", text.String(), w)
		}
	}
	if strings.Contains(text.String(), "aborted") {
		t.Errorf("text line %q has aborted, want it left out", text.String())
	}

	// A logger derived from New's JSON logger loses the fast path but keeps
	// its own attributes.
	var js bytes.Buffer
	logger, err = New(&js, Options{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	NewRequestLog(logger.With("component", "lb")).Log(&rec)
	var line map[string]any
	if err := json.Unmarshal(js.Bytes(), &line); err != nil {
		t.Fatalf("line %q: %v", js.String(), err)
	}
	if line["component"] != "lb" || line["path"] != "/api/me" || line["broken"] != true {
		t.Errorf("got %q, want component, path and broken", js.String())
	}
}

func TestRequestLogLevel(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			logger, err := New(&buf, Options{Format: format, Level: slog.LevelWarn})
			if err != nil {
				t.Fatal(err)
			}
			NewRequestLog(logger).Log(&base)
			if buf.Len() != 0 {
				t.Errorf("got %q, want nothing below Warn", buf.String())
			}
		})
	}
	NewRequestLog(nil).Log(&base) // a nil logger logs nothing, and does not panic
}

func TestRequestLogAllocs(t *testing.T) {
	logger, err := New(io.Discard, Options{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	l := NewRequestLog(logger)
	rec := with(func(r *RequestRecord) {
		r.Path = "/needs \"escaping\"\u2028\xff"
		r.ClientIP = netip.MustParseAddr("2001:db8::1")
		r.Broken = true
	})
	for range 10 {
		l.Log(&rec)
	}
	if n := testing.AllocsPerRun(1000, func() { l.Log(&rec) }); n != 0 {
		t.Errorf("Log allocates %v times per call, want 0", n)
	}
}

// TestRequestLogConcurrent writes request lines and ordinary slog lines
// through one JSON logger at once: every line must come out whole.
func TestRequestLogConcurrent(t *testing.T) {
	var buf bytes.Buffer
	logger, err := New(&buf, Options{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	l := NewRequestLog(logger)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rec := with(func(r *RequestRecord) { r.Path = strings.Repeat(fmt.Sprintf("/w%d", w), 100) })
			for i := range each {
				l.Log(&rec)
				logger.Info("other", "worker", w, "i", i, "pad", strings.Repeat("x", 300))
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2*workers*each {
		t.Fatalf("got %d lines, want %d", len(lines), 2*workers*each)
	}
	for _, line := range lines {
		if !json.Valid([]byte(line)) {
			t.Fatalf("line %q is not one JSON object", line)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	a, b := NewRequestIDs(), NewRequestIDs()
	first, second := a.Next(), a.Next()
	for _, id := range []string{first, second} {
		if !ValidRequestID(id) {
			t.Errorf("id %q is not a valid request id", id)
		}
	}
	prefix, n, ok := strings.Cut(first, "-")
	if !ok || len(prefix) != 16 || n != "1" {
		t.Errorf("got %q, want 16 characters of prefix, '-', then 1", first)
	}
	if second != prefix+"-2" {
		t.Errorf("got %q, want %q", second, prefix+"-2")
	}
	if other := b.Next(); strings.HasPrefix(other, prefix) {
		t.Errorf("two sources share the prefix %q", prefix)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				id := a.Next()
				mu.Lock()
				if seen[id] {
					t.Errorf("id %q made twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
