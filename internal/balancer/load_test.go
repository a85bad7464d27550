package balancer_test

import (
	"io"
	"net/http"
	. "outrigger/internal/balancer"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ejectingObserver is a stand-in for health.Passive (which this package must not import):
// fall consecutive failures mark a backend down unless it is the last healthy one.
type ejectingObserver struct {
	pool *Pool
	fall int
	mu   sync.Mutex
	n    map[string]int
}

func (o *ejectingObserver) Observe(name string, failed bool) {
	o.mu.Lock()
	if !failed {
		o.n[name] = 0
		o.mu.Unlock()
		return
	}
	o.n[name]++
	eject := o.n[name] >= o.fall
	if eject {
		o.n[name] = 0
	}
	o.mu.Unlock()
	if eject {
		o.pool.EjectUnlessLast(name)
	}
}

// TestKillOneFreezeOneUnderLoad drives three backends with bounded concurrent load, then kills
// one (listener and connections closed) and freezes another (handlers block): no GET fails,
// and none waits much longer than per_try_timeout.
func TestKillOneFreezeOneUnderLoad(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		const (
			workers  = 8
			duration = 2 * time.Second
			perTry   = 500 * time.Millisecond
		)
		release := make(gate)
		var frozen atomic.Bool
		handler := func(name string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if frozen.Load() && name == "frozen" {
					<-release
					return
				}
				_, _ = io.WriteString(w, name)
			}
		}
		killed := newBackend(t, "killed", handler("killed"))
		froze := newBackend(t, "frozen", handler("frozen"))
		steady := newBackend(t, "steady", handler("steady"))
		cfg := defaultConfig()
		cfg.PerTryTimeout = perTry
		r := newRig(t, front, cfg, PolicyLeastConn, killed.URL, froze.URL, steady.URL)
		r.proxy.SetObserver(&ejectingObserver{pool: r.pool, fall: 2, n: map[string]int{}})
		release.openAtEnd(t)

		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		defer client.CloseIdleConnections()
		var (
			total, failures atomic.Int64
			slowest         atomic.Int64
			firstErr        atomic.Value
		)
		stop := time.Now().Add(duration)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for time.Now().Before(stop) {
					start := time.Now()
					res, err := client.Get(r.front.URL + "/item")
					if err == nil {
						_, err = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if err == nil && res.StatusCode != http.StatusOK {
							err = &statusErr{res.StatusCode}
						}
					}
					total.Add(1)
					if err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					took := int64(time.Since(start))
					for cur := slowest.Load(); took > cur && !slowest.CompareAndSwap(cur, took); cur = slowest.Load() {
					}
				}
			})
		}
		WaitFor(t, duration, "load before the failures", func() bool { return total.Load() > 50 })
		killed.kill()
		frozen.Store(true)
		wg.Wait()

		if n := failures.Load(); n != 0 {
			t.Errorf("%d of %d GETs failed (first: %v), want 0", n, total.Load(), firstErr.Load())
		}
		if max := time.Duration(slowest.Load()); max > perTry+2*time.Second {
			t.Errorf("slowest GET took %v, want about per_try_timeout (%v) at most", max, perTry)
		}
		t.Logf("%d GETs, slowest %v, retries dial/reset/timeout = %v/%v/%v", total.Load(), time.Duration(slowest.Load()),
			Counter(t, r.reg, "lb_retries_total", map[string]string{"reason": "dial"}),
			Counter(t, r.reg, "lb_retries_total", map[string]string{"reason": "reset"}),
			Counter(t, r.reg, "lb_retries_total", map[string]string{"reason": "timeout"}))
		for _, name := range []string{"b0", "b1"} {
			if r.pool.IsHealthy(name) {
				t.Errorf("%s still healthy after failing on real traffic", name)
			}
		}
		if !r.pool.IsHealthy("b2") {
			t.Error("the steady backend was ejected")
		}
	})
}

type statusErr struct{ code int }

func (e *statusErr) Error() string { return "status " + http.StatusText(e.code) }
