package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var modes = []string{modeLean, modeSyncRT, modeTransport}

// startLean runs a leanproxy in the given mode in front of the backends on 127.0.0.1:0.
func startLean(t *testing.T, mode string, backends ...string) (string, *syncWriter) {
	t.Helper()
	logs := &syncWriter{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if mode == modeLean {
		p, err := newProxy(backends, logs)
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- p.serve(ctx, ln) }()
	} else {
		h, err := stdlibHandler(backends, mode, logs)
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- serveStdlib(ctx, ln, h) }()
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("serve did not return after cancel")
		}
	})
	return "http://" + ln.Addr().String(), logs
}

// syncWriter collects the access log; the proxy writes it after the response.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// waitLines waits (at most 5 s) until the log has n request lines and returns it.
func (s *syncWriter) waitLines(n int) (string, bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		out := s.buf.String()
		s.mu.Unlock()
		if strings.Count(out, `"msg":"request"`) >= n || time.Now().After(deadline) {
			return out, strings.Count(out, `"msg":"request"`) == n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForwards(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testForwards(t, mode) })
	}
}

func testForwards(t *testing.T, mode string) {
	type seen struct{ name, xff, proto, host, body string }
	got := make(chan seen, 10)
	var urls []string
	for _, name := range []string{"a", "b"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			got <- seen{name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Host, string(body)}
			if r.URL.Path == "/chunked" {
				w.Write([]byte("part one, "))
				w.(http.Flusher).Flush()
				w.Write([]byte("part two"))
				return
			}
			w.Header().Set("X-Backend", name)
			io.WriteString(w, "hello "+name)
		}))
		defer s.Close()
		urls = append(urls, s.URL)
	}
	base, logs := startLean(t, mode, urls...)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	tests := []struct {
		method, path, body string
		chunkedReq         bool
		wantBody           string
	}{
		{"GET", "/x", "", false, "hello b"},
		{"POST", "/x", "payload", false, "hello a"},
		{"POST", "/x", "streamed payload", true, "hello b"},
		{"GET", "/chunked", "", false, "part one, part two"},
	}
	for _, tc := range tests {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
			if tc.chunkedReq {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
		}
		req, err := http.NewRequest(tc.method, base+tc.path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", "6.6.6.6") // a client's own value is replaced
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: read: %v", tc.method, tc.path, err)
		}
		if resp.StatusCode != 200 || string(b) != tc.wantBody {
			t.Errorf("%s %s: got %d %q, want 200 %q", tc.method, tc.path, resp.StatusCode, b, tc.wantBody)
		}
		s := <-got
		if s.xff != "127.0.0.1" || s.proto != "http" || s.body != tc.body || !strings.HasPrefix(base, "http://"+s.host) {
			t.Errorf("%s %s: backend saw %+v, want X-Forwarded-For 127.0.0.1, proto http, body %q, host of %s", tc.method, tc.path, s, tc.body, base)
		}
	}
	if out, ok := logs.waitLines(len(tests)); !ok {
		t.Errorf("want %d access-log lines, got:\n%s", len(tests), out)
	}
}

func TestBackendDownIs502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	for _, mode := range modes {
		base, _ := startLean(t, mode, dead)
		resp, err := http.Get(base + "/")
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: got status %d, want 502", mode, resp.StatusCode)
		}
	}
}
