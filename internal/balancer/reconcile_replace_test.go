package balancer

import (
	"net/http"
	"testing"
)

// A reload that changes a backend's URL replaces it under the same name. Retiring the old
// backend must not delete the series the name shares with its successor (a counter reset in
// the middle of the new backend's life).
func TestReconcileURLChangeKeepsSeriesOfTheName(t *testing.T) {
	a := newBackend(t, "a", nil)
	b := newBackend(t, "b", nil)
	r := newRig(t, defaultConfig(), PolicyRoundRobin, a.URL)
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
	if got := counter(t, r.reg, "lb_requests_total", labels); got != 2 {
		t.Errorf("lb_requests_total{backend=b0,code=200}: got %v, want 2", got)
	}
	if got := counter(t, r.reg, "lb_request_duration_seconds", map[string]string{"backend": "b0"}); got != 2 {
		t.Errorf("lb_request_duration_seconds{backend=b0} samples: got %v, want 2", got)
	}
}
