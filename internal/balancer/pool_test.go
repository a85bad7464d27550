package balancer

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestPool(t *testing.T) (*Pool, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := NewPool(PoolOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return p, reg
}

func TestPoolAddGet(t *testing.T) {
	p, _ := newTestPool(t)
	st, err := p.Add("app-1", "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "app-1" || st.URL != "http://127.0.0.1:8080" || st.State != StateActive || st.Healthy {
		t.Errorf("new backend status %+v, want active, unhealthy", st)
	}
	if _, err := p.Add("app-1", "http://127.0.0.1:9090"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate add: got %v, want ErrExists", err)
	}
	if _, err := p.Add("App", "http://127.0.0.1:9090"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name: got %v, want ErrInvalid", err)
	}
	if _, err := p.Add("app-2", "http://127.0.0.1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad url: got %v, want ErrInvalid", err)
	}
	if _, err := p.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get unknown: got %v, want ErrNotFound", err)
	}
	if _, err := p.Drain("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("drain unknown: got %v, want ErrNotFound", err)
	}
	if _, err := p.Enable("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("enable unknown: got %v, want ErrNotFound", err)
	}
	if err := p.Remove(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove unknown: got %v, want ErrNotFound", err)
	}
	if _, err := p.Add("app-0", "https://127.0.0.1:8443"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Snapshot() {
		got = append(got, s.Name)
	}
	if strings.Join(got, ",") != "app-1,app-0" {
		t.Errorf("snapshot order %v, want [app-1 app-0] (configured order)", got)
	}
}

func TestPoolDrainEnable(t *testing.T) {
	p, reg := newTestPool(t)
	if _, err := p.Add("a", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	p.SetHealthy("a", true)
	for range 2 { // idempotent
		st, err := p.Drain("a")
		if err != nil || st.State != StateDraining || !st.Healthy {
			t.Fatalf("drain: %+v, %v; want draining and still healthy", st, err)
		}
	}
	if got := counter(t, reg, "lb_backend_draining", map[string]string{"backend": "a"}); got != 1 {
		t.Errorf("lb_backend_draining = %v, want 1", got)
	}
	for range 2 {
		st, err := p.Enable("a")
		if err != nil || st.State != StateActive {
			t.Fatalf("enable: %+v, %v; want active", st, err)
		}
	}
	p.SetHealthy("a", false)
	st, _ := p.Enable("a")
	if st.Healthy {
		t.Error("enable made an unhealthy backend healthy; health is a separate dimension")
	}
	if got := counter(t, reg, "lb_backend_up", map[string]string{"backend": "a"}); got != 0 {
		t.Errorf("lb_backend_up = %v, want 0", got)
	}
}

func TestPoolReportCheck(t *testing.T) {
	p, _ := newTestPool(t)
	if _, err := p.Add("a", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	p.ReportCheck("a", true, true, 3, at, "", "v2")
	p.ReportCheck("a", false, true, 0, at.Add(time.Second), "status 500", "")
	st, _ := p.Get("a")
	if st.ChecksOK != 0 || !st.LastCheck.Equal(at.Add(time.Second)) || st.LastError != "status 500" || st.Version != "v2" || !st.Answered {
		t.Errorf("status %+v, want checks_ok 0, last error, version v2 kept, answered", st)
	}
	p.ReportCheck("a", false, false, 0, at.Add(2*time.Second), "connection refused", "")
	if st, _ := p.Get("a"); st.Answered {
		t.Errorf("status %+v after a refused check, want answered false", st)
	}
	if got := p.HealthTargets(); len(got) != 1 || got["a"] != "http://127.0.0.1:1" {
		t.Errorf("HealthTargets = %v", got)
	}
}

func TestEjectUnlessLast(t *testing.T) {
	tests := []struct {
		name     string
		healthy  []bool
		draining []bool
		eject    string
		want     bool
	}{
		{"others healthy", []bool{true, true, true}, nil, "b0", true},
		{"last healthy", []bool{true, false, false}, nil, "b0", false},
		{"only other is draining", []bool{true, true}, []bool{false, true}, "b0", false},
		{"already down", []bool{false, true}, nil, "b0", false},
		{"unknown", []bool{true, true}, nil, "zz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestPool(t)
			for i, h := range tt.healthy {
				name := "b" + string(rune('0'+i))
				if _, err := p.Add(name, "http://127.0.0.1:1"); err != nil {
					t.Fatal(err)
				}
				p.SetHealthy(name, h)
				if tt.draining != nil && tt.draining[i] {
					_, _ = p.Drain(name)
				}
			}
			if got := p.EjectUnlessLast(tt.eject); got != tt.want {
				t.Errorf("EjectUnlessLast = %v, want %v", got, tt.want)
			}
			if tt.want && p.IsHealthy(tt.eject) {
				t.Error("ejected backend still healthy")
			}
		})
	}
}

func TestReconcile(t *testing.T) {
	p, reg := newTestPool(t)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := p.Add(n, "http://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
		p.SetHealthy(n, true)
	}
	before := p.snap.Load().byName
	_, _ = p.Drain("a")
	before["a"].requests.Store(7)
	p.pool(t).m.requests.WithLabelValues("c", "200").Inc()

	added, removed, err := p.Reconcile([]Spec{
		{Name: "d", URL: "http://127.0.0.1:4", Draining: true},
		{Name: "a", URL: "http://127.0.0.1:1"},
		{Name: "b", URL: "http://127.0.0.1:2"}, // URL changed: replaced
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(added, ",") != "d,b" || strings.Join(removed, ",") != "b,c" {
		t.Errorf("added %v removed %v, want [d b] and [b c]", added, removed)
	}
	after := p.snap.Load().byName
	if after["a"] != before["a"] {
		t.Error("backend a was rebuilt; a reload must keep it")
	}
	a, _ := p.Get("a")
	if a.State != StateDraining || !a.Healthy || a.Requests != 7 {
		t.Errorf("kept backend lost state: %+v", a)
	}
	d, _ := p.Get("d")
	if d.State != StateDraining || d.Healthy {
		t.Errorf("new backend d: %+v, want draining (from spec), unhealthy", d)
	}
	b, _ := p.Get("b")
	if b.URL != "http://127.0.0.1:2" || b.Healthy {
		t.Errorf("replaced backend b: %+v, want new URL, unhealthy", b)
	}
	if !before["c"].removed.Load() || before["c"].State() != StateDraining {
		t.Error("removed backend c still takes requests")
	}
	if findMetric(t, reg, "lb_requests_total", map[string]string{"backend": "c"}) != nil {
		t.Error("removed backend c still has lb_requests_total series")
	}
	if findMetric(t, reg, "lb_backend_up", map[string]string{"backend": "c"}) != nil {
		t.Error("removed backend c still has lb_backend_up series")
	}
	var order []string
	for _, s := range p.Snapshot() {
		order = append(order, s.Name)
	}
	if strings.Join(order, ",") != "d,a,b" {
		t.Errorf("order %v, want the file's [d a b]", order)
	}

	// An invalid list changes nothing.
	for _, bad := range [][]Spec{
		{{Name: "a", URL: "http://127.0.0.1:1"}, {Name: "a", URL: "http://127.0.0.1:2"}},
		{{Name: "Bad", URL: "http://127.0.0.1:1"}},
		{{Name: "x", URL: "http://127.0.0.1"}},
	} {
		if _, _, err := p.Reconcile(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Reconcile(%v): got %v, want ErrInvalid", bad, err)
		}
	}
	if got := len(p.Snapshot()); got != 3 {
		t.Errorf("after refused reconciles: %d backends, want 3", got)
	}
}

// pool returns p (helper so tests read like the code they poke at).
func (p *Pool) pool(t *testing.T) *Pool { t.Helper(); return p }

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
		waitFor(t, 5*time.Second, "backend draining", func() bool {
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
		if findMetric(t, r.reg, "lb_requests_total", map[string]string{"backend": "b0"}) != nil {
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
				if _, err := r.pool.Add("b1", deadURL(t)); err != nil {
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

func TestSetTimeoutsReplacesTransport(t *testing.T) {
	p, _ := newTestPool(t)
	if _, err := p.Add("a", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	b := p.snap.Load().byName["a"]
	old := b.tr.Load()
	p.SetTimeouts(time.Second, 5*time.Second) // default per-try: unchanged
	if b.tr.Load() != old {
		t.Error("transport replaced although the per-try timeout did not change")
	}
	p.SetTimeouts(time.Second, 3*time.Second)
	if tr := b.tr.Load(); tr == old || tr.ResponseHeaderTimeout != 3*time.Second {
		t.Errorf("per-try change: transport %p (old %p) with ResponseHeaderTimeout %v, want new with 3s", tr, old, tr.ResponseHeaderTimeout)
	}
	if got := time.Duration(p.dialTimeout.Load()); got != time.Second {
		t.Errorf("dial timeout %v, want 1s", got)
	}
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
