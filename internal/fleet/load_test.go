package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoadCounts(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 10 {
		case 3: // a failure
			http.Error(w, `{"error":"boom"}`, http.StatusBadGateway)
		case 7: // broken mid-body: promised 100 bytes, sends 10 and closes
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("0123456789"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	c := srv.Client()
	res := Load(t.Context(), LoadOptions{
		Workers:     3,
		Duration:    30 * time.Second,
		MaxRequests: 100,
		Request: func(ctx context.Context, worker int) error {
			_, _, err := Get(ctx, c, srv.URL+"/", http.StatusOK)
			return err
		},
	})
	t.Log(res)
	if res.Requests != 100 || res.Failures != 10 || res.Broken != 10 {
		t.Errorf("got %d requests, %d failed, %d broken; want 100, 10, 10", res.Requests, res.Failures, res.Broken)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
		t.Errorf("latencies: got p50 %v p99 %v max %v, want 0 < p50 <= p99 <= max", res.P50, res.P99, res.Max)
	}
	if got := res.Reasons["GET / : status 502, want 200: {\"error\":\"boom\"}"]; got != 10 {
		t.Errorf("reasons: got %v, want 10x the 502", res.Reasons)
	}
	if len(res.Samples) != maxSamples {
		t.Errorf("samples: got %d, want %d", len(res.Samples), maxSamples)
	}
}

func TestLoadStopDoesNotCountCutRequests(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 16)
	lr := StartLoad(t.Context(), LoadOptions{
		Workers:  2,
		Duration: 30 * time.Second,
		Request: func(ctx context.Context, worker int) error {
			started <- struct{}{}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cut: %w", ctx.Err())
			case <-release:
				return nil
			}
		},
	})
	<-started
	<-started
	res := lr.Stop()
	close(release)
	if res.Requests != 0 || res.Failures != 0 {
		t.Errorf("got %d requests, %d failures; want 0, 0 (both were cut by Stop)", res.Requests, res.Failures)
	}
}

func TestLoadEndsAtDuration(t *testing.T) {
	start := time.Now()
	res := Load(t.Context(), LoadOptions{
		Workers:  2,
		Duration: 200 * time.Millisecond,
		Pause:    10 * time.Millisecond,
		Request:  func(ctx context.Context, worker int) error { return nil },
	})
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("load took %v, want about 200ms", el)
	}
	if res.Requests == 0 || res.Failures != 0 {
		t.Errorf("got %d requests, %d failures; want some, 0", res.Requests, res.Failures)
	}
}

func TestReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GET /api/me (request load-1a2b): status 502, want 200: x", "GET /api/me : status 502, want 200: x"},
		{"plain", "plain"},
		{"GET /api/files/80efe55a-2a72-4708-86dc-ab402f7015fe (request x): status 503", "GET /api/files/{id} : status 503"},
		{strings.Repeat("a", 200), strings.Repeat("a", 120)},
	}
	for _, tc := range tests {
		if got := reason(tc.in); got != tc.want {
			t.Errorf("reason(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDoBrokenIsErrBroken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Request-ID"); !strings.HasPrefix(got, "load-") {
			t.Errorf("X-Request-ID: got %q, want load-...", got)
		}
		w.Header().Set("Content-Length", "10")
		_, _ = w.Write([]byte("abc"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	_, _, err := Get(t.Context(), srv.Client(), srv.URL, http.StatusOK)
	if !errors.Is(err, ErrBroken) {
		t.Errorf("got %v, want ErrBroken", err)
	}
}

func TestLoadWaitRequests(t *testing.T) {
	lr := StartLoad(t.Context(), LoadOptions{
		Workers:  2,
		Duration: 30 * time.Second,
		Pause:    time.Millisecond,
		Request:  func(ctx context.Context, worker int) error { return nil },
	})
	if !lr.WaitRequests(t.Context(), 20) {
		t.Errorf("WaitRequests(20): got false, want true")
	}
	res := lr.Stop()
	if res.Requests < 20 || res.Requests != lr.Requests() {
		t.Errorf("got %d requests (Requests() %d), want >= 20 and equal", res.Requests, lr.Requests())
	}
	if lr.WaitRequests(t.Context(), 1) {
		t.Errorf("WaitRequests after Stop: got true, want false")
	}
}

func TestLoadHeaderLatencyAndStalls(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("head "))
		w.(http.Flusher).Flush()
		<-release // the body stalls after the headers went out
		_, _ = w.Write([]byte("tail"))
	}))
	defer srv.Close()
	defer close(release)
	lr := StartLoad(t.Context(), LoadOptions{
		Workers:     1,
		Duration:    30 * time.Second,
		MaxRequests: 1,
		Request: func(ctx context.Context, worker int) error {
			_, _, err := Get(ctx, srv.Client(), srv.URL+"/", http.StatusOK)
			return err
		},
	})
	// Let the body stall well past stallAfter, then release it.
	timer := time.NewTimer(stallAfter + 200*time.Millisecond)
	<-timer.C
	release <- struct{}{}
	res := lr.Wait()
	if res.Requests != 1 || res.Failures != 0 || res.Stalled != 1 {
		t.Errorf("got %d requests, %d failed, %d stalled; want 1, 0, 1", res.Requests, res.Failures, res.Stalled)
	}
	if res.HeaderMax >= stallAfter || res.Max < stallAfter {
		t.Errorf("got header max %v, max %v; want headers fast, whole request > %v", res.HeaderMax, res.Max, stallAfter)
	}
}
