package health

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/lbtest"
)

// report is one ReportCheck call.
type report struct {
	ok        bool
	answered  bool
	checksOK  int
	at        time.Time
	errText   string
	version   string
	healthyAt bool
}

// fakePool stands in for balancer.Pool (Targets and Reporter).
type fakePool struct {
	mu      sync.Mutex
	urls    map[string]string
	healthy map[string]bool
	reports map[string][]report
	ejects  int
}

func newFakePool() *fakePool {
	return &fakePool{urls: map[string]string{}, healthy: map[string]bool{}, reports: map[string][]report{}}
}

func (f *fakePool) add(name, url string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.urls[name] = url
}

func (f *fakePool) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.urls, name)
	delete(f.healthy, name)
}

func (f *fakePool) HealthTargets() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.urls))
	for k, v := range f.urls {
		out[k] = v
	}
	return out
}

func (f *fakePool) ReportCheck(name string, ok, answered bool, consecutiveOK int, at time.Time, errText, version string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports[name] = append(f.reports[name], report{ok, answered, consecutiveOK, at, errText, version, f.healthy[name]})
}

func (f *fakePool) SetHealthy(name string, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthy[name] = up
}

func (f *fakePool) IsHealthy(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthy[name]
}

func (f *fakePool) EjectUnlessLast(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.healthy[name] {
		return false
	}
	for n, h := range f.healthy {
		if n != name && h {
			f.healthy[name] = false
			f.ejects++
			return true
		}
	}
	return false
}

func (f *fakePool) last(name string) report {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reports[name]
	if len(r) == 0 {
		return report{}
	}
	return r[len(r)-1]
}

// Backend modes for healthServer.
const (
	modeOK int32 = iota
	modeFail
	modeDraining
	modeFrozen
	modeGarbage
	modeDegraded
)

// healthServer is a real backend whose /healthz answer the test switches.
type healthServer struct {
	*httptest.Server
	mode    atomic.Int32
	version atomic.Value
	hits    atomic.Int64
}

func newHealthServer(t *testing.T) *healthServer {
	t.Helper()
	release := make(chan struct{})
	hs := &healthServer{}
	hs.version.Store("v1")
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.hits.Add(1)
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch hs.mode.Load() {
		case modeOK:
			_, _ = io.WriteString(w, `{"status":"ok","version":"`+hs.version.Load().(string)+`","instance":"x"}`)
		case modeFail:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":"boom"}`)
		case modeDraining:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"draining","version":"v1"}`)
		case modeDegraded:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"degraded"}`)
		case modeGarbage:
			_, _ = io.WriteString(w, `<html>ok</html>`)
		case modeFrozen:
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(hs.Close)
	t.Cleanup(func() { close(release) }) // runs before Close
	return hs
}

// deadURL returns the URL of a bound-then-closed port.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

// newTestChecker returns a checker over pool with a metrics registry and a log buffer.
func newTestChecker(t *testing.T, cfg Config, pool *fakePool) (*Checker, *prometheus.Registry, *lbtest.SyncBuffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &lbtest.SyncBuffer{}
	c, err := NewChecker(cfg, pool, pool, nil, slog.New(slog.NewJSONHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg, logs
}

func checkCount(t *testing.T, reg *prometheus.Registry, backend, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "lb_health_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["backend"] == backend && (result == "" || labels["result"] == result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func bg() context.Context { return context.Background() }
