package balancer_test

import (
	"context"
	"errors"
	"net/http"
	. "outrigger/internal/balancer"
	"sync"
	"testing"
	"time"
)

// A reload that changes a backend's URL replaces it under the same name. Retiring the old
// backend must not delete the series the name shares with its successor (a counter reset in
// the middle of the new backend's life).
func TestReconcileURLChangeKeepsSeriesOfTheName(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		a := newBackend(t, "a", nil)
		b := newBackend(t, "b", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, a.URL)
		if code, _ := r.do(t, "GET", "/", nil); code != http.StatusOK {
			t.Fatalf("before reload: got %d, want 200", code)
		}
		added, removed, err := r.pool.Reconcile([]Spec{{Name: "b0", URL: b.URL}})
		if err != nil || len(added) != 1 || len(removed) != 1 {
			t.Fatalf("Reconcile: added %v removed %v err %v, want b0 replaced", added, removed, err)
		}
		r.pool.SetHealthy("b0", true)
		if code, _ := r.do(t, "GET", "/", nil); code != http.StatusOK {
			t.Fatalf("after reload: got %d, want 200", code)
		}
		labels := map[string]string{"backend": "b0", "code": "200"}
		if got := Counter(t, r.reg, "lb_requests_total", labels); got != 2 {
			t.Errorf("lb_requests_total{backend=b0,code=200}: got %v, want 2", got)
		}
		if got := Counter(t, r.reg, "lb_request_duration_seconds", map[string]string{"backend": "b0"}); got != 2 {
			t.Errorf("lb_request_duration_seconds{backend=b0} samples: got %v, want 2", got)
		}
	})
}

// Remove drains a backend and waits for its requests. If a reload replaces the backend under
// the same name meanwhile, what Remove finally takes out is the successor: it must drain and
// wait for that one too, not cut its requests.
func TestRemoveWaitsForABackendAReloadPutUnderTheName(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		holdA, holdB := make(gate), make(gate)
		a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { <-holdA; _, _ = w.Write([]byte("a")) })
		b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { <-holdB; _, _ = w.Write([]byte("b")) })
		var onceA, onceB sync.Once
		openA := func() { onceA.Do(func() { close(holdA) }) }
		openB := func() { onceB.Do(func() { close(holdB) }) }
		t.Cleanup(openA) // before the servers' Close, which waits for the handlers
		t.Cleanup(openB)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, a.URL)
		codes := make(chan int, 2)
		get := func() {
			res, err := r.front.Client().Get(r.front.URL + "/")
			if err != nil {
				codes <- 0
				return
			}
			_ = res.Body.Close()
			codes <- res.StatusCode
		}
		inFlight := func() int64 {
			st, err := r.pool.Get("b0")
			if err != nil {
				return -1
			}
			return st.InFlight
		}
		go get()
		WaitFor(t, 5*time.Second, "the first request in flight on a", func() bool { return inFlight() == 1 })
		removed := make(chan error, 1)
		go func() { removed <- r.pool.Remove(context.Background(), "b0") }()
		WaitFor(t, 5*time.Second, "b0 draining", func() bool {
			st, err := r.pool.Get("b0")
			return err == nil && st.State == StateDraining
		})
		if _, _, err := r.pool.Reconcile([]Spec{{Name: "b0", URL: b.URL}}); err != nil {
			t.Fatal(err)
		}
		r.pool.SetHealthy("b0", true)
		go get()
		WaitFor(t, 5*time.Second, "the second request in flight on b", func() bool { return inFlight() == 1 })
		openA()
		if code := <-codes; code != http.StatusOK {
			t.Fatalf("first request: got %d, want 200", code)
		}
		var st Status
		var err error
		WaitFor(t, 5*time.Second, "Remove to act on the successor", func() bool {
			st, err = r.pool.Get("b0")
			return err != nil || st.State == StateDraining
		})
		if err != nil {
			t.Fatalf("Remove took the successor out with a request in flight: %v", err)
		}
		select {
		case err := <-removed:
			t.Fatalf("Remove returned (%v) with a request in flight on b0", err)
		default:
		}
		openB()
		if code := <-codes; code != http.StatusOK {
			t.Errorf("second request: got %d, want 200", code)
		}
		if err := <-removed; err != nil {
			t.Errorf("Remove: %v", err)
		}
		if _, err := r.pool.Get("b0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after Remove: %v, want ErrNotFound", err)
		}
	})
}
