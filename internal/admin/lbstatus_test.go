package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"outrigger/internal/balancer"
)

func TestFailingOpen(t *testing.T) {
	up := balancer.Status{State: balancer.StateActive, Healthy: true}
	down := balancer.Status{State: balancer.StateActive}
	drainedUp := balancer.Status{State: balancer.StateDraining, Healthy: true}
	drainedDown := balancer.Status{State: balancer.StateDraining}
	tests := []struct {
		name string
		snap []balancer.Status
		want bool
	}{
		{"no backends", nil, false},
		{"one healthy", []balancer.Status{down, up}, false},
		{"every active one down", []balancer.Status{down, down}, true},
		{"only a drained one healthy", []balancer.Status{down, drainedUp}, true},
		{"every one drained", []balancer.Status{drainedDown, drainedUp}, false},
	}
	for _, tt := range tests {
		if got := failingOpen(tt.snap); got != tt.want {
			t.Errorf("%s: failingOpen = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestLBStatusAPI(t *testing.T) {
	pool, err := balancer.NewPool(balancer.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"app-1", "app-2"} {
		if _, err := pool.Add(n, "http://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now().Add(-time.Hour)
	expires := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &fakeReloader{last: Reload{OK: true, Trigger: "start", Config: "/etc/lb/lb.yaml", RestartNeeded: []string{}}}
	srv := httptest.NewServer(NewHandler(pool, nil, Options{
		Token: func() string { return testToken }, Version: "v9", Started: started, Reloader: r,
		Certificates: func() []Certificate {
			return []Certificate{{Name: "www.example.com", NotAfter: &expires}, {Name: "new.example.com"}}
		},
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/status without a token: %d, want 401", resp.StatusCode)
	}
	c := &Client{BaseURL: srv.URL, Token: testToken}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "v9" || !st.Started.Equal(started.UTC()) || time.Since(st.Now) > time.Minute {
		t.Errorf("status %+v: want version v9, started %v, now about now", st, started)
	}
	if !st.FailOpen || st.Ready != NoBackends {
		t.Errorf("two active backends, none healthy or answering: fail_open %t, ready %q; want true, no_backends", st.FailOpen, st.Ready)
	}
	if len(st.Certificates) != 2 || st.Certificates[0].NotAfter == nil || !st.Certificates[0].NotAfter.Equal(expires) ||
		st.Certificates[1].NotAfter != nil {
		t.Errorf("certificates %+v, want www.example.com until %v and new.example.com with none", st.Certificates, expires)
	}
	if st.LastReload == nil || !st.LastReload.OK || st.LastReload.Trigger != "start" {
		t.Errorf("last_reload %+v", st.LastReload)
	}
	pool.SetHealthy("app-2", true)
	if st, err = c.Status(context.Background()); err != nil || st.FailOpen || st.Ready != Ready {
		t.Errorf("with app-2 healthy: fail_open %t, ready %q (%v); want false, ready", st.FailOpen, st.Ready, err)
	}
}
