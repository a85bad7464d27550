package balancer_test

import (
	"context"
	"errors"
	"net/http"
	. "outrigger/internal/balancer"
	"testing"
	"time"
)

// pool returns p (helper so tests read like the code they poke at).

func TestRemoveWaitsForInFlight(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		release := make(chan struct{})
		arrived := make(chan struct{}, 1)
		be := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-release
			_, _ = w.Write([]byte("done"))
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		got := make(chan int, 1)
		go func() {
			code, _ := r.do(t, http.MethodGet, "/", nil)
			got <- code
		}()
		<-arrived
		removed := make(chan error, 1)
		go func() { removed <- r.pool.Remove(context.Background(), "b0") }()
		WaitFor(t, 5*time.Second, "backend draining", func() bool {
			st, err := r.pool.Get("b0")
			return err == nil && st.State == StateDraining
		})
		select {
		case err := <-removed:
			t.Fatalf("Remove returned (%v) with a request in flight", err)
		default:
		}
		close(release)
		if err := <-removed; err != nil {
			t.Fatal(err)
		}
		if code := <-got; code != http.StatusOK {
			t.Errorf("in-flight request: got %d, want 200", code)
		}
		if _, err := r.pool.Get("b0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after Remove: %v, want ErrNotFound", err)
		}
		if FindMetric(t, r.reg, "lb_requests_total", map[string]string{"backend": "b0"}) != nil {
			t.Error("removed backend still has lb_requests_total series")
		}
	})
}

func TestRemoveGivesUpAtDeadline(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		release := make(gate)
		arrived := make(chan struct{}, 1)
		be := newBackend(t, "stuck", func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-release
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		release.openAtEnd(t)
		go r.getAndDiscard("/")
		<-arrived
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := r.pool.Remove(ctx, "b0"); err != nil {
			t.Fatalf("Remove at deadline: %v, want nil (it removes anyway)", err)
		}
		if len(r.pool.Snapshot()) != 0 {
			t.Error("backend still in the pool")
		}
	})
}

func TestIdleConnectionsClosedOnDownAndDrain(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		be := newBackend(t, "a", nil)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		steps := []struct {
			name   string
			action func()
			want   int64 // connections the backend has seen after the next request
		}{
			{"keep-alive reused", func() {}, 1},
			{"marked down", func() { r.pool.SetHealthy("b0", false); r.pool.SetHealthy("b0", true) }, 2},
			{"drained", func() { _, _ = r.pool.Drain("b0"); _, _ = r.pool.Enable("b0") }, 3},
			{"ejected", func() {
				// the last healthy backend is never ejected: add a second one to allow it
				if _, err := r.pool.Add("b1", DeadURL(t)); err != nil {
					t.Fatal(err)
				}
				r.pool.SetHealthy("b1", true)
				if !r.pool.EjectUnlessLast("b0") {
					t.Fatal("not ejected")
				}
				_ = r.pool.Remove(context.Background(), "b1")
				r.pool.SetHealthy("b0", true)
			}, 4},
		}
		if code, _ := r.do(t, http.MethodGet, "/", nil); code != 200 {
			t.Fatalf("first request: %d", code)
		}
		for _, s := range steps {
			s.action()
			if code, _ := r.do(t, http.MethodGet, "/", nil); code != 200 {
				t.Fatalf("%s: status %d", s.name, code)
			}
			if got := be.conns.Load(); got != s.want {
				t.Errorf("%s: backend saw %d connections, want %d", s.name, got, s.want)
			}
		}
	})
}

func TestDrainedBackendKeepsNoIdleConnections(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		release := make(gate)
		arrived := make(chan struct{}, 1)
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				arrived <- struct{}{}
				<-release
			}
			_, _ = w.Write([]byte("ok"))
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		done := make(chan int, 1)
		go func() {
			code, _ := r.do(t, http.MethodGet, "/slow", nil)
			done <- code
		}()
		<-arrived
		if _, err := r.pool.Drain("b0"); err != nil {
			t.Fatal(err)
		}
		close(release)
		if code := <-done; code != 200 {
			t.Fatalf("in-flight request: %d", code)
		}
		if _, err := r.pool.Enable("b0"); err != nil {
			t.Fatal(err)
		}
		if code, _ := r.do(t, http.MethodGet, "/", nil); code != 200 {
			t.Fatalf("after enable: %d", code)
		}
		if got := be.conns.Load(); got != 2 {
			t.Errorf("backend saw %d connections, want 2 (the one used while draining was not kept)", got)
		}
	})
}
