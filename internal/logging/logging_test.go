package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestNewFormats(t *testing.T) {
	tests := []struct {
		format   string
		wantJSON bool
		wantErr  bool
	}{
		{"", true, false}, // a bytes.Buffer is not a terminal
		{"auto", true, false},
		{"json", true, false},
		{"text", false, false},
		{"xml", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			logger, err := New(&buf, Options{Format: tc.format})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.format) {
					t.Fatalf("New(%q) error = %v, want one naming the format", tc.format, err)
				}
				if ValidFormat(tc.format) {
					t.Errorf("ValidFormat(%q) = true", tc.format)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tc.format, err)
			}
			logger.Info("hello", "k", 1)
			isJSON := json.Valid(bytes.TrimSpace(buf.Bytes()))
			if isJSON != tc.wantJSON {
				t.Errorf("output %q: JSON = %v, want %v", buf.String(), isJSON, tc.wantJSON)
			}
			if !strings.Contains(buf.String(), "hello") {
				t.Errorf("output %q lacks the message", buf.String())
			}
		})
	}
}

// serve runs h behind Middleware and returns the decoded log lines.
func serve(t *testing.T, h http.Handler, req *http.Request, opts ...MiddlewareOption) (*httptest.ResponseRecorder, []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	clientIP := func(r *http.Request) netip.Addr { return netip.MustParseAddr("198.51.100.9") }
	w := httptest.NewRecorder()
	Middleware(logger, clientIP, opts...)(h).ServeHTTP(w, req)
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return w, lines
}

func TestMiddlewareLine(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Annotate(r.Context(), slog.String("backend", "app-1"), slog.Int("attempts", 2))
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	})
	req := httptest.NewRequest("GET", "/a/b?secret=1", nil)
	req.Header.Set(RequestIDHeader, "client-id_1.2")
	w, lines := serve(t, h, req)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1", len(lines))
	}
	l := lines[0]
	want := map[string]any{
		"msg": "request", "method": "GET", "path": "/a/b", "status": 418.0,
		"client_ip": "198.51.100.9", "request_id": "client-id_1.2", "bytes": 15.0,
		"backend": "app-1", "attempts": 2.0,
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %v, want %v", k, l[k], v)
		}
	}
	if d, ok := l["duration"].(float64); !ok || d < 0 || d > 5 {
		t.Errorf("duration = %v, want seconds as a float", l["duration"])
	}
	if got := w.Header().Get(RequestIDHeader); got != "client-id_1.2" {
		t.Errorf("response X-Request-Id = %q, want the client's", got)
	}
}

func TestMiddlewareRequestID(t *testing.T) {
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if RequestID(r.Context()) != r.Header.Get(RequestIDHeader) {
			t.Errorf("RequestID(ctx) = %q, header %q", RequestID(r.Context()), r.Header.Get(RequestIDHeader))
		}
		seen = append(seen, r.Header.Get(RequestIDHeader))
	})
	for _, id := range []string{"", "has space", strings.Repeat("a", 129), "ok\n", "é"} {
		req := httptest.NewRequest("GET", "/", nil)
		if id != "" {
			req.Header.Set(RequestIDHeader, id)
		}
		_, lines := serve(t, h, req)
		got := seen[len(seen)-1]
		if got == id || !ValidRequestID(got) {
			t.Errorf("client id %q: handler saw %q, want a fresh valid id", id, got)
		}
		if lines[0]["request_id"] != got {
			t.Errorf("logged request_id %v, want %q", lines[0]["request_id"], got)
		}
	}
	if seen[0] == seen[1] {
		t.Errorf("two generated ids are equal: %q", seen[0])
	}
	if !ValidRequestID(strings.Repeat("Z", 128)) {
		t.Errorf("a 128-character id is refused")
	}
}

func TestMiddlewareSetStatusAndSkip(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		SetStatus(r.Context(), 499)
	})
	_, lines := serve(t, h, httptest.NewRequest("GET", "/", nil))
	if lines[0]["status"] != 499.0 {
		t.Errorf("status = %v, want 499", lines[0]["status"])
	}
	skip := SkipIf(func(r *http.Request, status int) bool { return r.URL.Path == "/healthz" && status == 499 })
	if _, lines := serve(t, h, httptest.NewRequest("GET", "/healthz", nil), skip); len(lines) != 0 {
		t.Errorf("skipped request logged: %v", lines)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	_, lines = serve(t, ok, httptest.NewRequest("GET", "/healthz", nil), skip)
	if len(lines) != 1 || lines[0]["status"] != 200.0 {
		t.Errorf("unwritten response logged as %v, want one line with status 200", lines)
	}
}

func TestMiddlewareKeepsFlushAndHijack(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flush" {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nhijacked")
		rw.Flush()
	})
	srv := httptest.NewServer(Middleware(logger, nil)(h))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/flush")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "a" {
		t.Errorf("body = %q, want a", body)
	}

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "hijacked" {
		t.Errorf("after upgrade got %q, want hijacked", rest)
	}
}

func TestMiddlewareLogsAbortedResponse(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	})
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		Middleware(logger, nil)(h).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/big", nil))
	}()
	if recovered != http.ErrAbortHandler {
		t.Fatalf("recovered %v, want http.ErrAbortHandler passed on", recovered)
	}
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if line["aborted"] != true || line["bytes"] != 7.0 || line["path"] != "/big" {
		t.Errorf("line = %v, want aborted=true bytes=7 path=/big", line)
	}
}

func TestMiddlewareOneRequestIDOnResponse(t *testing.T) {
	tests := []struct {
		name string
		h    http.HandlerFunc
	}{
		{"backend copy replaced", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add(RequestIDHeader, "from-backend")
			w.WriteHeader(http.StatusAccepted)
		}},
		{"write without WriteHeader", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") }},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}},
		{"flush first", func(w http.ResponseWriter, r *http.Request) { w.(http.Flusher).Flush() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set(RequestIDHeader, "abc")
			w, _ := serve(t, tc.h, req)
			if got := w.Result().Header.Values(RequestIDHeader); len(got) != 1 || got[0] != "abc" {
				t.Errorf("response X-Request-Id = %q, want exactly [abc]", got)
			}
		})
	}
}
