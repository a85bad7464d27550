package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/balancer"
	"outrigger/internal/health"
	"outrigger/internal/lbtest"
)

// readyRig is an admin handler over a pool whose backends are checked by a real checker.
type readyRig struct {
	pool    *balancer.Pool
	checker *health.Checker
	srv     *httptest.Server
	phase   atomic.Int32
	logs    *lbtest.SyncBuffer
}

func newReadyRig(t *testing.T, kinds ...string) *readyRig {
	t.Helper()
	reg := prometheus.NewRegistry()
	pool, err := balancer.NewPool(balancer.PoolOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for i, kind := range kinds {
		if _, err := pool.Add(fmt.Sprintf("app-%d", i+1), lbtest.HealthBackend(t, kind)); err != nil {
			t.Fatal(err)
		}
	}
	checker, err := health.NewChecker(health.Config{Path: "/healthz", Interval: time.Second, Timeout: 200 * time.Millisecond, Rise: 1, Fall: 1},
		pool, pool, nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	r := &readyRig{pool: pool, checker: checker, logs: &lbtest.SyncBuffer{}}
	r.phase.Store(int32(PhaseServing))
	h := NewHandler(pool, slog.New(slog.NewJSONHandler(r.logs, nil)), Options{
		Token: func() string { return testToken },
		Phase: func() Phase { return Phase(r.phase.Load()) },
	})
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	return r
}

// check runs two rounds of health checks (one admits, fall 1 takes out).
func (r *readyRig) check(t *testing.T) {
	t.Helper()
	r.checker.CheckAll(t.Context())
	r.checker.CheckAll(t.Context())
}

// readyz asks GET /readyz without a token and returns the status code and body.
func (r *readyRig) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(r.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	return resp.StatusCode, string(body)
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name  string
		kinds []string
		setup func(t *testing.T, r *readyRig)
		code  int
		body  string
	}{
		{"a healthy backend", []string{lbtest.HealthOK}, nil, 200, `{"status":"ready"}`},
		{"healthy among refusing", []string{lbtest.HealthClosed, lbtest.HealthOK}, nil, 200, `{"status":"ready"}`},
		{"no backends at all", nil, nil, 503, `{"status":"no_backends"}`},
		{"every backend refuses", []string{lbtest.HealthClosed, lbtest.HealthClosed}, nil, 503, `{"status":"no_backends"}`},
		{"every backend times out", []string{lbtest.HealthFrozen, lbtest.HealthFrozen}, nil, 503, `{"status":"no_backends"}`},
		{"refusing and frozen", []string{lbtest.HealthClosed, lbtest.HealthFrozen}, nil, 503, `{"status":"no_backends"}`},
		{"every backend drained", []string{lbtest.HealthOK, lbtest.HealthOK}, func(t *testing.T, r *readyRig) {
			for _, n := range []string{"app-1", "app-2"} {
				if _, err := r.pool.Drain(n); err != nil {
					t.Fatal(err)
				}
			}
		}, 503, `{"status":"no_backends"}`},
		{"healthy one drained, the other refuses", []string{lbtest.HealthOK, lbtest.HealthClosed}, func(t *testing.T, r *readyRig) {
			if _, err := r.pool.Drain("app-1"); err != nil {
				t.Fatal(err)
			}
		}, 503, `{"status":"no_backends"}`},
		// Fail-open: no backend is healthy, but they answer, so lb sends them requests.
		{"unhealthy but answering (500)", []string{lbtest.HealthFail, lbtest.HealthClosed}, nil, 200, `{"status":"ready"}`},
		{"unhealthy but answering (degraded)", []string{lbtest.HealthDegraded, lbtest.HealthDegraded}, nil, 200, `{"status":"ready"}`},
		{"every backend answers draining", []string{lbtest.HealthDraining, lbtest.HealthDraining}, nil, 200, `{"status":"ready"}`},
		{"starting", []string{lbtest.HealthOK}, func(t *testing.T, r *readyRig) { r.phase.Store(int32(PhaseStarting)) }, 503, `{"status":"starting"}`},
		{"stopping", []string{lbtest.HealthOK}, func(t *testing.T, r *readyRig) { r.phase.Store(int32(PhaseStopping)) }, 503, `{"status":"stopping"}`},
		{"stopping without backends", nil, func(t *testing.T, r *readyRig) { r.phase.Store(int32(PhaseStopping)) }, 503, `{"status":"stopping"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReadyRig(t, tt.kinds...)
			r.check(t)
			if tt.setup != nil {
				tt.setup(t, r)
			}
			code, body := r.readyz(t)
			if code != tt.code || body != tt.body+"\n" {
				t.Errorf("GET /readyz: got %d %q, want %d %s", code, body, tt.code, tt.body)
			}
			c := &Client{BaseURL: r.srv.URL} // no token
			ready, status, err := c.Ready(t.Context())
			if err != nil || ready != (tt.code == 200) || `{"status":"`+string(status)+`"}` != tt.body {
				t.Errorf("Client.Ready: got %t %q %v, want %t and the status of %s", ready, status, err, tt.code == 200, tt.body)
			}
		})
	}
}

// TestReadyzFollowsBackends checks that /readyz changes as the backends do and that each
// change is logged once, however often it is asked.
func TestReadyzFollowsBackends(t *testing.T) {
	r := newReadyRig(t, lbtest.HealthOK)
	status := func() string {
		t.Helper()
		r.check(t)
		_, body := r.readyz(t)
		r.readyz(t)
		return body
	}
	if got := status(); got != `{"status":"ready"}`+"\n" {
		t.Fatalf("got %q, want ready", got)
	}
	if _, err := r.pool.Drain("app-1"); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != `{"status":"no_backends"}`+"\n" {
		t.Errorf("after the drain: got %q, want no_backends", got)
	}
	if _, err := r.pool.Enable("app-1"); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != `{"status":"ready"}`+"\n" {
		t.Errorf("after the enable: got %q, want ready", got)
	}
	if got := r.logs.Count(`"msg":"readiness changed"`); got != 3 {
		t.Errorf("%d readiness lines for 3 changes over 6 polls, want 3:\n%s", got, r.logs.String())
	}
	if got := r.logs.Count(`"to":"no_backends"`); got != 1 {
		t.Errorf("%d changes to no_backends logged, want 1", got)
	}
}

func TestClientReadyErrors(t *testing.T) {
	closed := lbtest.HealthBackend(t, lbtest.HealthClosed)
	if _, _, err := (&Client{BaseURL: closed}).Ready(t.Context()); err == nil {
		t.Error("Ready on a closed port: got no error")
	}
	// Something that is not lb's admin listener.
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	if ready, _, err := (&Client{BaseURL: other.URL}).Ready(t.Context()); err == nil || ready {
		t.Errorf("Ready on a server without /readyz: got %t, %v, want an error", ready, err)
	}
	frozen := lbtest.HealthBackend(t, lbtest.HealthFrozen)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := (&Client{BaseURL: frozen}).Ready(ctx); err == nil {
		t.Error("Ready on a server that never answers: got no error")
	}
}
