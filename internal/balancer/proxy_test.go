package balancer_test

import (
	"io"
	"net/http"
	. "outrigger/internal/balancer"
	"strings"
	"testing"
	"time"

	"outrigger/internal/clientip"
)

func TestProxyHeaders(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		seen := make(chan *http.Request, 1)
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			seen <- r
			w.Header().Set("X-Backend", "a")
			_, _ = io.WriteString(w, "hello")
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/path?q=1", nil)
		req.Host = "public.example"
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		req.Header.Set("X-Real-IP", "6.6.6.6")
		req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
		req.Header.Set("X-Forwarded-Proto", "gopher")
		req.Header.Set("X-Request-ID", "req-123")
		res, err := r.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "hello" || res.Header.Get("X-Backend") != "a" {
			t.Fatalf("got %d %q (X-Backend %q), want 200 hello from a", res.StatusCode, body, res.Header.Get("X-Backend"))
		}
		in := <-seen
		checks := []struct{ name, got, want string }{
			{"Host", in.Host, "public.example"},
			{"path", in.URL.RequestURI(), "/path?q=1"},
			{"X-Forwarded-For", strings.Join(in.Header.Values("X-Forwarded-For"), "|"), "127.0.0.1"},
			{"X-Forwarded-Proto", in.Header.Get("X-Forwarded-Proto"), "http"},
			{"X-Forwarded-Host", in.Header.Get("X-Forwarded-Host"), "public.example"},
			{"Forwarded", in.Header.Get("Forwarded"), ""},
			{"X-Real-IP", in.Header.Get("X-Real-IP"), ""},
			{"X_Forwarded_For", strings.Join(in.Header["X_Forwarded_For"], ""), ""},
			{"X-Request-ID", in.Header.Get("X-Request-ID"), "req-123"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("backend saw %s %q, want %q", c.name, c.got, c.want)
			}
		}
		lines := r.lines(t, 1)
		if len(lines) != 1 || lines[0]["backend"] != "b0" || lines[0]["attempts"] != float64(1) {
			t.Errorf("request log %v, want backend b0, attempts 1", lines)
		}
		if got := Counter(t, r.reg, "lb_requests_total", map[string]string{"backend": "b0", "code": "200"}); got != 1 {
			t.Errorf("lb_requests_total{b0,200} = %v, want 1", got)
		}
		if got := Counter(t, r.reg, "lb_request_duration_seconds", map[string]string{"backend": "b0"}); got != 1 {
			t.Errorf("lb_request_duration_seconds{b0} count = %v, want 1", got)
		}
	})
}

func TestProxyTrustedForwardedFor(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		seen := make(chan string, 1)
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			seen <- r.Header.Get("X-Forwarded-For")
		})
		cfg := defaultConfig()
		res, err := clientip.NewResolver([]string{"127.0.0.0/8"})
		if err != nil {
			t.Fatal(err)
		}
		cfg.TrustedProxies = res
		r := newRig(t, front, cfg, PolicyRoundRobin, be.URL)
		req, _ := http.NewRequest(http.MethodGet, r.front.URL, nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := r.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := <-seen; got != "203.0.113.7, 127.0.0.1" {
			t.Errorf("X-Forwarded-For from a trusted peer: got %q, want %q", got, "203.0.113.7, 127.0.0.1")
		}
	})
}

// TestSlowBodyNotCutByPerTryTimeout: per_try_timeout bounds the wait for headers, not a
// body that a slow producer streams for longer than it.
func TestSlowBodyNotCutByPerTryTimeout(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		const chunks = 8
		be := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			tick := time.NewTicker(100 * time.Millisecond) // a slow producer: 8 x 100 ms > per-try
			defer tick.Stop()
			for i := range chunks {
				_, _ = io.WriteString(w, strings.Repeat(string(rune('a'+i)), 1000))
				_ = rc.Flush()
				<-tick.C
			}
		})
		cfg := defaultConfig()
		cfg.PerTryTimeout = 250 * time.Millisecond
		r := newRig(t, front, cfg, PolicyRoundRobin, be.URL)
		code, body := r.do(t, http.MethodGet, "/big", nil)
		if code != 200 || len(body) != chunks*1000 {
			t.Fatalf("got %d with %d bytes, want 200 with %d", code, len(body), chunks*1000)
		}
		if be.hits.Load() != 1 {
			t.Errorf("backend got %d requests, want 1", be.hits.Load())
		}
	})
}

// TestStreamingFlushesEachPart: an event stream, and a chunked response (no
// Content-Length, not an event stream), are passed on part by part, not buffered.
func TestStreamingFlushesEachPart(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		tests := []struct {
			name, contentType string
			part              func(i int) string // what the backend writes and the client reads as one part
		}{
			{"event stream", "text/event-stream", func(i int) string { return "data: " + string(rune('0'+i)) + "\n\n" }},
			{"chunked", "text/plain", func(i int) string { return "chunk " + string(rune('0'+i)) + "\n" }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				next := make(chan struct{})
				be := newBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tc.contentType)
					rc := http.NewResponseController(w)
					for i := range 3 {
						_, _ = io.WriteString(w, tc.part(i))
						_ = rc.Flush()
						select {
						case <-next:
						case <-r.Context().Done():
							return
						}
					}
				})
				r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
				res, err := r.front.Client().Get(r.front.URL + "/stream")
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if res.ContentLength != -1 || len(res.TransferEncoding) == 0 || res.TransferEncoding[0] != "chunked" {
					t.Fatalf("content length %d, transfer encoding %v; want a chunked response", res.ContentLength, res.TransferEncoding)
				}
				for i := range 3 {
					want := tc.part(i)
					got := make([]byte, len(want))
					if _, err := io.ReadFull(res.Body, got); err != nil {
						t.Fatalf("part %d: %v", i, err)
					}
					if string(got) != want {
						t.Fatalf("part %d: got %q, want %q", i, got, want)
					}
					next <- struct{}{} // the backend writes the next part only after we read this one
				}
			})
		}
	})
}

func TestNoBackend(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin)
		code, body := r.do(t, http.MethodGet, "/", nil)
		if code != http.StatusServiceUnavailable || body != `{"error":"no backend available"}`+"\n" {
			t.Errorf("got %d %q, want 503 JSON", code, body)
		}
		if got := Counter(t, r.reg, "lb_requests_total", map[string]string{"backend": "none", "code": "503"}); got != 1 {
			t.Errorf("lb_requests_total{none,503} = %v, want 1", got)
		}
	})
}

func TestAllBackendsDownFailsOpen(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		a := newBackend(t, "a", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, DeadURL(t), a.URL)
		r.pool.SetHealthy("b0", false)
		r.pool.SetHealthy("b1", false)
		code, body := r.do(t, http.MethodGet, "/", nil)
		if code != 200 || body != "a" {
			t.Fatalf("got %d %q, want 200 from an active (unhealthy) backend", code, body)
		}
		if got := Counter(t, r.reg, "lb_fail_open_total", nil); got < 1 {
			t.Errorf("lb_fail_open_total = %v, want >= 1", got)
		}
		// Draining backends are not failed open to.
		_, _ = r.pool.Drain("b1")
		code, _ = r.do(t, http.MethodGet, "/", nil)
		if code != http.StatusBadGateway {
			t.Errorf("only a dead active backend left: got %d, want 502", code)
		}
		// A healthy backend ends fail-open: unhealthy ones get nothing.
		_, _ = r.pool.Enable("b1")
		r.pool.SetHealthy("b1", true)
		before := a.hits.Load()
		for range 4 {
			if code, _ := r.do(t, http.MethodGet, "/", nil); code != 200 {
				t.Fatalf("status %d", code)
			}
		}
		if got := a.hits.Load() - before; got != 4 {
			t.Errorf("healthy backend got %d of 4 requests", got)
		}
	})
}

func TestMaxInFlightPerBackend(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		release := make(gate)
		arrived := make(chan struct{}, 1)
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-release
		})
		cfg := defaultConfig()
		cfg.MaxInFlightPerBackend = 1
		r := newRig(t, front, cfg, PolicyRoundRobin, be.URL)
		release.openAtEnd(t)
		go r.getAndDiscard("/")
		<-arrived
		code, body := r.do(t, http.MethodGet, "/", nil)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "busy") {
			t.Errorf("got %d %q, want 503 all backends busy", code, body)
		}
		if st, _ := r.pool.Get("b0"); st.InFlight != 1 {
			t.Errorf("in flight %d, want 1", st.InFlight)
		}
	})
}
