package balancer_test

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

	. "outrigger/internal/balancer" // the tests of the balancer, behind the real front end
	"outrigger/internal/frontend"
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
	WaitFor(t, 5*time.Second, "request log lines", func() bool { return len(r.logs.requestLines(t)) >= n })
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

// rig is a pool and proxy behind the real front end (internal/frontend) on loopback.
type rig struct {
	pool  *Pool
	proxy *Proxy
	reg   *prometheus.Registry
	front *frontServer
	// set is what the front end's Settings returns (tests may change it).
	set  atomic.Pointer[frontend.Settings]
	logs *syncBuffer
	obs  *recordingObserver
}

// frontKind is which of lb's two front ends serves a rig's HTTP/1 requests.
type frontKind string

const (
	frontLoop    frontKind = "loop"    // lb's own HTTP/1.1 connection loop
	frontNetHTTP frontKind = "nethttp" // net/http behind the gate (LB_FAST_PATH=off)
)

// forEachFront runs test once per front kind, each as a subtest.
func forEachFront(t *testing.T, test func(t *testing.T, front frontKind)) {
	t.Helper()
	for _, k := range []frontKind{frontNetHTTP, frontLoop} {
		t.Run(string(k), func(t *testing.T) { test(t, k) })
	}
}

// frontServer is a rig's listening front end and a client for it that can go away.
type frontServer struct {
	ln  *frontend.Listener
	URL string
	tr  *http.Transport

	mu    sync.Mutex
	conns []net.Conn // the client's connections
}

// Client returns an HTTP client of the front (HTTP/1.1, keep-alive).
func (f *frontServer) Client() *http.Client { return &http.Client{Transport: f.tr} }

// Addr is the front's address.
func (f *frontServer) Addr() string { return f.ln.Addr().String() }

// closeClients closes every client connection of the front, as a client going away would.
func (r *rig) closeClients() { r.front.closeClients() }

// closeClients closes every client connection made with Client.
func (f *frontServer) closeClients() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
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
// the front end of the given kind.
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
	r.set.Store(&frontend.Settings{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		BodyReadTimeout: time.Minute, WriteTimeout: time.Minute})
	r.front = serveProxy(t, r.proxy, front, func() frontend.Settings { return *r.set.Load() })
	return r
}

// serveProxy serves p on a loopback port with the real front end of the given kind, with
// settings (nil: the defaults of a test) until the test ends.
func serveProxy(t testing.TB, p *Proxy, kind frontKind, settings func() frontend.Settings) *frontServer {
	t.Helper()
	if settings == nil {
		settings = func() frontend.Settings {
			return frontend.Settings{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
				BodyReadTimeout: time.Minute, WriteTimeout: time.Minute}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := frontend.New(frontend.Options{Name: "test", Listener: ln, Proxy: p, NetHTTPOnly: kind == frontNetHTTP, Settings: settings})
	fl.Start()
	f := &frontServer{ln: fl, URL: "http://" + ln.Addr().String()}
	dialer := &net.Dialer{}
	f.tr = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
		}
		return c, err
	}}
	t.Cleanup(func() {
		f.tr.CloseIdleConnections()
		f.closeClients()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fl.Shutdown(ctx)
	})
	return f
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
