package balancer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"outrigger/internal/logging"
)

// testBackend is a real HTTP server standing in for an app server.
type testBackend struct {
	*httptest.Server
	name  string
	hits  atomic.Int64
	conns atomic.Int64 // new TCP connections accepted
}

// newBackend starts a backend; h nil answers 200 with the backend's name after reading the body.
func newBackend(t testing.TB, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	tb := &testBackend{name: name}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Served-By", name)
			_, _ = io.WriteString(w, name)
		}
	}
	tb.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tb.hits.Add(1)
		h(w, r)
	}))
	tb.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tb.conns.Add(1)
		}
	}
	tb.Start()
	t.Cleanup(tb.Close)
	return tb
}

// kill makes the backend vanish like a killed process: listener and connections closed.
func (tb *testBackend) kill() {
	_ = tb.Listener.Close()
	tb.CloseClientConnections()
}

// deadURL returns the URL of a port that was bound and closed: connecting is refused.
func deadURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

// gate is a channel that blocking handlers wait on. Call openAtEnd after creating every
// server (cleanups run last-in first-out, and a server's Close waits for its handlers).
type gate chan struct{}

func (g gate) openAtEnd(t testing.TB) {
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(g) }) })
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// requestLines returns the parsed "request" log lines.
func (b *syncBuffer) requestLines(t testing.TB) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// lines waits until n request log lines were written (the middleware logs after the
// response went out) and returns them.
func (r *rig) lines(t testing.TB, n int) []map[string]any {
	t.Helper()
	waitFor(t, 5*time.Second, "request log lines", func() bool { return len(r.logs.requestLines(t)) >= n })
	return r.logs.requestLines(t)
}

// recordingObserver records passive-health observations.
type recordingObserver struct {
	mu     sync.Mutex
	failed map[string]int
	ok     map[string]int
	forgot map[string]int
}

func (o *recordingObserver) Observe(name string, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failed == nil {
		o.failed, o.ok = map[string]int{}, map[string]int{}
	}
	if failed {
		o.failed[name]++
	} else {
		o.ok[name]++
	}
}

// Forget drops a backend's counts (as health.Passive.Forget does) and records the call.
func (o *recordingObserver) Forget(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.failed, name)
	delete(o.ok, name)
	if o.forgot == nil {
		o.forgot = map[string]int{}
	}
	o.forgot[name]++
}

func (o *recordingObserver) forgotten(name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.forgot[name]
}

func (o *recordingObserver) counts(name string) (failed, ok int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failed[name], o.ok[name]
}

// rig is a pool and proxy behind a real front server with the request-log middleware.
type rig struct {
	pool  *Pool
	proxy *Proxy
	reg   *prometheus.Registry
	front *httptest.Server
	fast  *fastListener // nil for the net/http front
	// fastSet is what the fast path's Settings returns (tests may change it).
	fastSet atomic.Pointer[FastSettings]
	logs    *syncBuffer
	obs     *recordingObserver
}

// frontKind is how a rig's front server takes client connections.
type frontKind string

const (
	frontStd  frontKind = "nethttp"  // net/http.Server with logging.Middleware around Proxy.ServeHTTP
	frontFast frontKind = "fastpath" // FastPath first; what it hands off goes to the net/http front
)

// forEachFront runs test once per front kind, each as a subtest.
func forEachFront(t *testing.T, test func(t *testing.T, front frontKind)) {
	t.Helper()
	for _, k := range []frontKind{frontStd, frontFast} {
		t.Run(string(k), func(t *testing.T) { test(t, k) })
	}
}

// closeClients closes every client connection of the front, as a client going away would.
func (r *rig) closeClients() {
	if r.fast != nil {
		r.fast.closeClients()
	}
	r.front.CloseClientConnections()
}

// fastListener puts a FastPath in front of an httptest.Server: it accepts every connection
// and serves it on the fast path; Accept returns only the connections the fast path hands off.
type fastListener struct {
	net.Listener
	fp     *FastPath
	handed chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newFastListener(inner net.Listener, fp *FastPath) *fastListener {
	l := &fastListener{Listener: inner, fp: fp, handed: make(chan net.Conn), done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *fastListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.fp.ServeConn(c, func(rest net.Conn) {
				select {
				case l.handed <- rest:
				case <-l.done:
					_ = rest.Close()
				}
			})
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

func (l *fastListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handed:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *fastListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// closeClients closes the connections the fast path serves.
func (l *fastListener) closeClients() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Close()
	}
}

// shutdown closes the listener, cuts the fast path's connections and waits for its goroutines.
func (l *fastListener) shutdown() {
	_ = l.Close()
	l.fp.Close()
	l.wg.Wait()
}

// defaultConfig is a proxy config for tests: short timeouts, 2 retries.
func defaultConfig() ProxyConfig {
	return ProxyConfig{
		DialTimeout:    time.Second,
		PerTryTimeout:  2 * time.Second,
		MaxRetries:     2,
		RetryBudget:    0.2,
		RetryBodyBytes: 64 << 10,
	}
}

// newRig builds a pool with the given backend URLs (named b0, b1, ...), all healthy, behind
// a front of the given kind.
func newRig(t testing.TB, front frontKind, cfg ProxyConfig, policy string, urls ...string) *rig {
	t.Helper()
	r := &rig{reg: prometheus.NewRegistry(), logs: &syncBuffer{}, obs: &recordingObserver{}}
	logger := slog.New(slog.NewJSONHandler(r.logs, nil))
	pool, err := NewPool(PoolOptions{Registerer: r.reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	r.pool = pool
	for i, u := range urls {
		name := "b" + string(rune('0'+i))
		if _, err := pool.Add(name, u); err != nil {
			t.Fatal(err)
		}
		pool.SetHealthy(name, true)
	}
	pol, err := NewPolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	r.proxy = NewProxy(pool, pol, cfg, r.obs, logger)
	r.front = httptest.NewUnstartedServer(logging.Middleware(logger, nil)(r.proxy))
	if front == frontFast {
		r.fastSet.Store(&FastSettings{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute})
		fp := NewFastPath(r.proxy, FastPathOptions{Log: logging.NewRequestLog(logger), Settings: func() FastSettings {
			return *r.fastSet.Load()
		}})
		r.fast = newFastListener(r.front.Listener, fp)
		r.front.Listener = r.fast
		t.Cleanup(r.fast.shutdown)
	}
	r.front.Start()
	t.Cleanup(r.front.Close)
	return r
}

// getAndDiscard sends a GET through the front and drops the answer: a request to hold a
// backend busy from a goroutine of its own (it may not call t.Fatal).
func (r *rig) getAndDiscard(path string) {
	if res, err := r.front.Client().Get(r.front.URL + path); err == nil {
		res.Body.Close()
	}
}

// get sends a GET through the front and returns status and body.
func (r *rig) do(t testing.TB, method, path string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.front.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.front.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res.StatusCode, string(b)
}

// counter returns the value of a counter series in reg (0 if absent).
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	m := findMetric(t, reg, name, labels)
	if m == nil {
		return 0
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	if m.Histogram != nil {
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// findMetric returns the series of name whose labels include labels, or nil.
func findMetric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
