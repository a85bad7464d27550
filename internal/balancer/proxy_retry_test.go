package balancer_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	. "outrigger/internal/balancer"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDeadBackendRetried(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		live := newBackend(t, "live", nil)
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPatch} {
			t.Run(method, func(t *testing.T) {
				r := newRig(t, front, defaultConfig(), PolicyRoundRobin, DeadURL(t), live.URL)
				code, body := r.do(t, method, "/", strings.NewReader("payload"))
				if code != 200 || body != "live" {
					t.Fatalf("got %d %q, want 200 from live", code, body)
				}
				lines := r.lines(t, 1)
				if len(lines) != 1 || lines[0]["attempts"] != float64(2) || lines[0]["backend"] != "b1" {
					t.Errorf("log %v, want attempts 2 ending on b1", lines)
				}
				if got := Counter(t, r.reg, "lb_retries_total", map[string]string{"reason": "dial"}); got != 1 {
					t.Errorf("lb_retries_total{dial} = %v, want 1", got)
				}
				if failed, _ := r.obs.counts("b0"); failed != 1 {
					t.Errorf("observer saw %d failures of the dead backend, want 1", failed)
				}
				st, _ := r.pool.Get("b0")
				if st.Failures != 1 || st.Requests != 1 {
					t.Errorf("dead backend requests/failures = %d/%d, want 1/1", st.Requests, st.Failures)
				}
			})
		}
	})
}

func TestPostBodyReplayed(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		for _, size := range []int{10, 64 << 10, 200 << 10} { // buffered, at the limit, streamed
			got := make(chan []byte, 1)
			live := newBackend(t, "live", func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- b
			})
			r := newRig(t, front, defaultConfig(), PolicyRoundRobin, DeadURL(t), live.URL)
			payload := bytes.Repeat([]byte("x"), size)
			// An unknown length (chunked) body as well as a known one.
			for _, body := range []io.Reader{bytes.NewReader(payload), io.MultiReader(bytes.NewReader(payload))} {
				r.proxy.SetPolicy(&RoundRobin{}) // start at the dead one
				code, _ := r.do(t, http.MethodPost, "/upload", body)
				if code != 200 {
					t.Fatalf("size %d: status %d, want 200", size, code)
				}
				if b := <-got; !bytes.Equal(b, payload) {
					t.Errorf("size %d: backend got %d bytes, want %d", size, len(b), size)
				}
			}
		}
	})
}

// dyingHandler reads the request body, then drops the connection without answering,
// like a server killed mid-request.
func dyingHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = c.Close()
	}
}

func TestRequestThatReachedDyingBackend(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		tests := []struct {
			method   string
			wantCode int
			wantLive int64
		}{
			{http.MethodPost, http.StatusBadGateway, 0}, // reached the backend: never replayed
			{http.MethodPatch, http.StatusBadGateway, 0},
			{http.MethodGet, http.StatusOK, 1}, // idempotent: retried elsewhere
			{http.MethodPut, http.StatusOK, 1},
			{http.MethodDelete, http.StatusOK, 1},
		}
		for _, tt := range tests {
			t.Run(tt.method, func(t *testing.T) {
				dying := newBackend(t, "dying", dyingHandler)
				live := newBackend(t, "live", nil)
				r := newRig(t, front, defaultConfig(), PolicyRoundRobin, dying.URL, live.URL)
				code, body := r.do(t, tt.method, "/", strings.NewReader("order #1"))
				if code != tt.wantCode {
					t.Fatalf("got %d %q, want %d", code, body, tt.wantCode)
				}
				if got := live.hits.Load(); got != tt.wantLive {
					t.Errorf("live backend got %d requests, want %d", got, tt.wantLive)
				}
				if dying.hits.Load() != 1 {
					t.Errorf("dying backend got %d requests, want 1", dying.hits.Load())
				}
				if tt.wantCode == http.StatusBadGateway {
					var e struct{ Error string }
					if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" || strings.Contains(body, "EOF") {
						t.Errorf("error body %q, want a small JSON error without internals", body)
					}
				}
			})
		}
	})
}

func TestFrozenBackend(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		release := make(gate)
		frozen := newBackend(t, "frozen", func(w http.ResponseWriter, r *http.Request) { <-release })
		live := newBackend(t, "live", nil)
		cfg := defaultConfig()
		cfg.PerTryTimeout = 300 * time.Millisecond
		r := newRig(t, front, cfg, PolicyRoundRobin, frozen.URL, live.URL)
		release.openAtEnd(t)

		start := time.Now()
		code, body := r.do(t, http.MethodGet, "/", nil)
		if code != 200 || body != "live" {
			t.Fatalf("GET: got %d %q, want 200 from live", code, body)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("GET took %v, want about per_try_timeout", took)
		}
		if got := Counter(t, r.reg, "lb_retries_total", map[string]string{"reason": "timeout"}); got != 1 {
			t.Errorf("lb_retries_total{timeout} = %v, want 1", got)
		}

		r.proxy.SetPolicy(&RoundRobin{})
		code, body = r.do(t, http.MethodPost, "/", strings.NewReader("x"))
		if code != http.StatusGatewayTimeout || !strings.Contains(body, `"error"`) {
			t.Errorf("POST to frozen: got %d %q, want 504 JSON", code, body)
		}
		if live.hits.Load() != 1 {
			t.Errorf("live got %d requests, want 1 (the POST is not retried)", live.hits.Load())
		}
	})
}

func TestRetryBudgetExhausted(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		dying := newBackend(t, "dying", dyingHandler)
		live := newBackend(t, "live", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, dying.URL, live.URL)
		var clk atomic.Int64 // seconds
		clk.Store(3_000_000)
		r.proxy.SetRetryBudgetClock(func() time.Time { return time.Unix(clk.Load(), 0) })
		for r.proxy.SpendRetryBudget(0.2) { // spend the budget
		}
		code, _ := r.do(t, http.MethodGet, "/", nil)
		if code != http.StatusBadGateway {
			t.Errorf("got %d, want 502 (no retry left in the budget)", code)
		}
		if got := Counter(t, r.reg, "lb_retry_budget_exhausted_total", nil); got != 1 {
			t.Errorf("lb_retry_budget_exhausted_total = %v, want 1", got)
		}
		if live.hits.Load() != 0 {
			t.Error("retried beyond the budget")
		}
		clk.Add(11)
		r.proxy.SetPolicy(&RoundRobin{})
		if code, _ := r.do(t, http.MethodGet, "/", nil); code != 200 {
			t.Errorf("after the window: got %d, want 200", code)
		}
	})
}

func TestMaxRetries(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		urls := []string{DeadURL(t), DeadURL(t), DeadURL(t), DeadURL(t)}
		cfg := defaultConfig()
		cfg.MaxRetries = 2
		r := newRig(t, front, cfg, PolicyRoundRobin, urls...)
		if code, _ := r.do(t, http.MethodGet, "/", nil); code != http.StatusBadGateway {
			t.Errorf("got %d, want 502", code)
		}
		if lines := r.lines(t, 1); len(lines) != 1 || lines[0]["attempts"] != float64(3) {
			t.Errorf("log %v, want 3 attempts (1 + max_retries)", lines)
		}
	})
}

func TestFlappingBackendGETsSucceed(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		var n atomic.Int64
		flappy := newBackend(t, "flappy", func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%2 == 1 {
				dyingHandler(w, r) // every other request: the connection drops
				return
			}
			_, _ = io.WriteString(w, "flappy")
		})
		steady := newBackend(t, "steady", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, flappy.URL, steady.URL)
		for i := range 40 {
			if code, body := r.do(t, http.MethodGet, "/", nil); code != 200 {
				t.Fatalf("GET %d: %d %q", i, code, body)
			}
		}
		if failed, _ := r.obs.counts("b0"); failed == 0 {
			t.Error("observer saw no failures of the flapping backend")
		}
	})
}
