package balancer_test

import (
	"context"
	"io"
	"net/http"
	. "outrigger/internal/balancer"
	"sync"
	"testing"
	"time"
)

// removeNow removes b0 without waiting for its requests (a Remove past its deadline).
func removeNow(t *testing.T, r *rig, name string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.pool.Remove(ctx, name); err != nil {
		t.Fatalf("remove %s: %v", name, err)
	}
}

// openOnce returns a function closing ch once; it also runs at cleanup (register it after the
// servers whose handlers wait on ch).
func openOnce(t *testing.T, ch chan struct{}) func() {
	var once sync.Once
	open := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(open)
	return open
}

// assertNoSeries fails if any per-backend series of name exists.
func assertNoSeries(t *testing.T, r *rig, name string) {
	t.Helper()
	for _, m := range []string{"lb_requests_total", "lb_request_duration_seconds", "lb_responses_broken_total"} {
		if FindMetric(t, r.reg, m, map[string]string{"backend": name}) != nil {
			t.Errorf("removed backend %s still has a %s series", name, m)
		}
	}
}

// A backend removed while its response is being copied breaks the body afterwards: the broken
// response must not bring back its series or its passive failure count.
func TestRemovedBackendBrokenResponseLeavesNothing(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		brk := make(chan struct{})
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			// Chunked, so the proxy passes "partial" on at once (FlushInterval 0 holds a response
			// with a Content-Length until its copy ends).
			_, _ = io.WriteString(w, "partial")
			_ = http.NewResponseController(w).Flush()
			<-brk
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = c.Close()
			}
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		openBrk := openOnce(t, brk)
		res, err := r.front.Client().Get(r.front.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		buf := make([]byte, len("partial"))
		if _, err := io.ReadFull(res.Body, buf); err != nil {
			t.Fatal(err)
		}
		removeNow(t, r, "b0")
		openBrk()
		if _, err := io.ReadAll(res.Body); err == nil {
			t.Error("client read a complete body from a broken response")
		}
		if line := r.lines(t, 1)[0]; line["broken"] != true {
			t.Errorf("log line %v, want broken=true", line)
		}
		assertNoSeries(t, r, "b0")
		if failed, _ := r.obs.counts("b0"); failed != 0 {
			t.Errorf("observer holds %d failures of the removed backend, want 0", failed)
		}
	})
}

// A backend removed while a request waits for its headers then resets the connection: the
// failure must not be reported to the observer (it would recreate the passive count).
func TestRemovedBackendFailureNotObserved(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		arrived, drop := make(chan struct{}, 1), make(chan struct{})
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-drop
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = c.Close()
			}
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		openDrop := openOnce(t, drop)
		got := make(chan int, 1)
		go func() {
			code, _ := r.do(t, http.MethodGet, "/", nil)
			got <- code
		}()
		<-arrived
		removeNow(t, r, "b0")
		openDrop()
		if code := <-got; code != http.StatusBadGateway {
			t.Errorf("got %d, want 502", code)
		}
		r.lines(t, 1)
		if failed, _ := r.obs.counts("b0"); failed != 0 {
			t.Errorf("observer got %d failures for a removed backend, want 0", failed)
		}
		assertNoSeries(t, r, "b0")
	})
}

// Requests racing with Remove leave no series of the removed backend behind.
func TestRemoveUnderLoadLeavesNoSeries(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, a.URL, b.URL)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					res, err := r.front.Client().Get(r.front.URL)
					if err != nil {
						continue
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}()
		}
		WaitFor(t, 5*time.Second, "traffic on b0", func() bool { return a.hits.Load() > 20 })
		removeNow(t, r, "b0")
		WaitFor(t, 5*time.Second, "traffic after the removal", func() bool { return b.hits.Load() > a.hits.Load()+20 })
		close(stop)
		wg.Wait()
		assertNoSeries(t, r, "b0")
	})
}
