package balancer

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// forgetCounter is an Observer that counts failures and Forget calls by backend.
type forgetCounter struct {
	mu             sync.Mutex
	failed, forgot map[string]int
}

func (o *forgetCounter) Observe(name string, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if failed {
		o.failed[name]++
	}
}

func (o *forgetCounter) Forget(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.failed, name)
	o.forgot[name]++
}

// A request whose removed check passed just before the removal writes its series after the
// removal deleted them; when it ends it deletes them again, and tells the observer to forget.
func TestSeriesWrittenDuringRemovalDeletedAtEnd(t *testing.T) {
	reg := prometheus.NewRegistry()
	pool, err := NewPool(PoolOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Add("b0", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	pool.SetHealthy("b0", true)
	obs := &forgetCounter{failed: map[string]int{}, forgot: map[string]int{}}
	p := NewProxy(pool, &RoundRobin{}, ProxyConfig{MaxRetries: 1}, obs, nil)
	var st tries
	st.reset()
	b, _ := p.pick(&st, p.cfg.Load(), p.policy.Load().Policy)
	if b == nil {
		t.Fatal("no backend picked")
	}
	b.release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pool.Remove(ctx, "b0"); err != nil {
		t.Fatal(err)
	}
	// What a request does after its (passed) removed check, racing with the removal:
	pool.m.requests.WithLabelValues("b0", "200").Inc()
	pool.m.duration.WithLabelValues("b0").Observe(0.001)
	pool.m.broken.WithLabelValues("b0").Inc()
	obs.Observe("b0", true)
	if findMetric(t, reg, "lb_requests_total", map[string]string{"backend": "b0"}) == nil {
		t.Fatal("test setup: the racing write did not create a series")
	}
	p.finish(&st)
	for _, m := range []string{"lb_requests_total", "lb_request_duration_seconds", "lb_responses_broken_total"} {
		if findMetric(t, reg, m, map[string]string{"backend": "b0"}) != nil {
			t.Errorf("removed backend still has a %s series", m)
		}
	}
	if obs.failed["b0"] != 0 || obs.forgot["b0"] != 1 {
		t.Errorf("observer: %d failures, forgotten %d times; want 0 and 1", obs.failed["b0"], obs.forgot["b0"])
	}
}
