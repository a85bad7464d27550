package balancer_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	. "outrigger/internal/balancer"
	"sync"
	"testing"
	"time"
)

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
