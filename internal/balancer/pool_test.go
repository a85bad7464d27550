package balancer

import (
	"context"
	"errors"
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
	p.m.requests.WithLabelValues("c", "200").Inc()

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

func TestSetTimeouts(t *testing.T) {
	p, _ := newTestPool(t)
	p.SetTimeouts(time.Second, 0) // 0: keep the per-try timeout
	if got := time.Duration(p.perTryNS.Load()); got != 5*time.Second {
		t.Errorf("per-try timeout %v, want the default 5s kept", got)
	}
	p.SetTimeouts(0, 3*time.Second) // 0: keep the dial timeout
	if got := time.Duration(p.perTryNS.Load()); got != 3*time.Second {
		t.Errorf("per-try timeout %v, want 3s", got)
	}
	if got := time.Duration(p.dialTimeout.Load()); got != time.Second {
		t.Errorf("dial timeout %v, want 1s", got)
	}
}
