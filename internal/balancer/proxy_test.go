package balancer_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	. "outrigger/internal/balancer"
	"strings"
	"sync"
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

func TestClientGoneIs499AndNotBlamed(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		release := make(gate)
		arrived := make(chan struct{}, 1)
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		release.openAtEnd(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.front.URL, nil)
			res, err := r.front.Client().Do(req)
			if err == nil {
				res.Body.Close()
			}
			done <- err
		}()
		<-arrived
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("client: %v, want canceled", err)
		}
		if line := r.lines(t, 1)[0]; line["status"] != float64(499) {
			t.Errorf("logged status %v, want 499", line["status"])
		}
		st, _ := r.pool.Get("b0")
		if st.Failures != 0 || st.InFlight != 0 {
			t.Errorf("failures %d in flight %d, want 0 and 0", st.Failures, st.InFlight)
		}
		if failed, _ := r.obs.counts("b0"); failed != 0 {
			t.Errorf("observer got %d failures for a client cancel, want 0", failed)
		}
		if be.hits.Load() != 1 {
			t.Errorf("backend got %d requests, want 1 (no retry)", be.hits.Load())
		}
	})
}

func TestBackend5xxIsAnAnswer(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		})
		other := newBackend(t, "b", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL, other.URL)
		if code, _ := r.do(t, http.MethodGet, "/", nil); code != 500 {
			t.Fatalf("got %d, want the backend's 500 passed through", code)
		}
		if other.hits.Load() != 0 {
			t.Error("a 500 answer was retried")
		}
		failed, ok := r.obs.counts("b0")
		if failed != 0 || ok != 1 {
			t.Errorf("observer failed/ok = %d/%d, want 0/1", failed, ok)
		}
	})
}

func TestBrokenResponseNotRetried(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, "partial")
			_ = http.NewResponseController(w).Flush()
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = c.Close()
			}
		})
		other := newBackend(t, "b", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL, other.URL)
		res, err := r.front.Client().Get(r.front.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Error("client read a complete body from a broken response")
		}
		if other.hits.Load() != 0 {
			t.Error("a response that had started was retried")
		}
		WaitFor(t, 5*time.Second, "broken counter", func() bool {
			return Counter(t, r.reg, "lb_responses_broken_total", map[string]string{"backend": "b0"}) == 1
		})
		if st, _ := r.pool.Get("b0"); st.InFlight != 0 || st.Failures != 1 {
			t.Errorf("in flight %d failures %d after a broken response, want 0 and 1", st.InFlight, st.Failures)
		}
		if line := r.lines(t, 1)[0]; line["broken"] != true || line["backend"] != "b0" {
			t.Errorf("log line %v, want broken=true on b0", line)
		}
	})
}

func TestClientGoneMidBody(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		more := make(chan struct{})
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "first\n")
			_ = http.NewResponseController(w).Flush()
			<-more
			for range 64 { // enough to fail writing to the departed client
				_, _ = w.Write(make([]byte, 32<<10))
			}
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		res, err := r.front.Client().Get(r.front.URL)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(res.Body)
		if line, _ := br.ReadString('\n'); line != "first\n" {
			t.Fatalf("got %q", line)
		}
		r.closeClients() // the client goes away mid-body
		close(more)
		if line := r.lines(t, 1)[0]; line["status"] != float64(499) || line["broken"] != nil {
			t.Errorf("log line %v, want status 499 and not broken", line)
		}
		res.Body.Close()
		st, _ := r.pool.Get("b0")
		if st.Failures != 0 {
			t.Errorf("failures %d, want 0: a departed client is not the backend's fault", st.Failures)
		}
		if failed, _ := r.obs.counts("b0"); failed != 0 {
			t.Errorf("observer saw %d failures, want 0", failed)
		}
	})
}

func TestWebSocketUpgrade(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		be := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "websocket" {
				http.Error(w, "want upgrade", 400)
				return
			}
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			_, _ = io.Copy(c, brw) // echo
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		conn, err := net.Dial("tcp", r.front.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("got %d, want 101", res.StatusCode)
		}
		_, _ = io.WriteString(conn, "ping\n")
		if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("echo: %q %v", line, err)
		}
		st, _ := r.pool.Get("b0")
		if st.Upgraded != 1 || st.InFlight != 0 {
			t.Errorf("upgraded %d in flight %d, want 1 and 0", st.Upgraded, st.InFlight)
		}
		r.pool.CloseUpgraded("b0")
		if _, err := br.ReadString('\n'); err == nil {
			t.Error("connection still open after CloseUpgraded")
		}
		WaitFor(t, 5*time.Second, "upgraded back to 0", func() bool {
			st, _ := r.pool.Get("b0")
			return st.Upgraded == 0
		})
	})
}

func TestDrainIsExact(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		a := newBackend(t, "a", nil)
		b := newBackend(t, "b", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, a.URL, b.URL)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		var failed sync.Map
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil && i < 2000; i++ {
					res, err := r.front.Client().Get(r.front.URL)
					if err != nil {
						failed.Store(w, err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						failed.Store(w, res.StatusCode)
					}
				}
			})
		}
		WaitFor(t, 5*time.Second, "load on a", func() bool { return a.hits.Load() > 20 })
		if _, err := r.pool.Drain("b0"); err != nil {
			t.Fatal(err)
		}
		if err := r.pool.WaitIdle(context.Background(), "b0"); err != nil {
			t.Fatal(err)
		}
		after := a.hits.Load()
		WaitFor(t, 10*time.Second, "more load on b", func() bool { return b.hits.Load() > 200 })
		cancel()
		wg.Wait()
		if got := a.hits.Load(); got != after {
			t.Errorf("drained backend got %d requests after Drain + WaitIdle returned", got-after)
		}
		failed.Range(func(k, v any) bool { t.Errorf("worker %v: %v", k, v); return true })
		if st, _ := r.pool.Get("b0"); st.InFlight != 0 {
			t.Errorf("in flight %d, want 0", st.InFlight)
		}
	})
}

func TestSetConfigAndPolicyAtRuntime(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		a := newBackend(t, "a", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, DeadURL(t), a.URL)
		cfg := defaultConfig()
		cfg.MaxRetries = 0
		r.proxy.SetConfig(cfg)
		r.proxy.SetPolicy(&RoundRobin{}) // first pick: the dead one
		if code, _ := r.do(t, http.MethodGet, "/", nil); code != http.StatusBadGateway {
			t.Errorf("max_retries 0: got %d, want 502", code)
		}
		cfg.MaxRetries = 1
		r.proxy.SetConfig(cfg)
		r.proxy.SetPolicy(&RoundRobin{})
		if code, _ := r.do(t, http.MethodGet, "/", nil); code != 200 {
			t.Errorf("max_retries 1: got %d, want 200", code)
		}
	})
}

func TestInFlightUntilBodyCopied(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		more := make(chan struct{})
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "first\n")
			_ = http.NewResponseController(w).Flush()
			<-more
			_, _ = io.WriteString(w, "second\n")
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		res, err := r.front.Client().Get(r.front.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		if line, _ := br.ReadString('\n'); line != "first\n" {
			t.Fatalf("got %q", line)
		}
		if st, _ := r.pool.Get("b0"); st.InFlight != 1 {
			t.Errorf("headers and part of the body sent: in flight %d, want 1", st.InFlight)
		}
		close(more)
		if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
			t.Fatalf("rest %q", rest)
		}
		WaitFor(t, 5*time.Second, "in flight 0", func() bool {
			st, _ := r.pool.Get("b0")
			return st.InFlight == 0
		})
	})
}
