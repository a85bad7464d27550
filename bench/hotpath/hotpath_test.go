package hotpath

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/balancer"
	"outrigger/internal/clientip"
	"outrigger/internal/logging"
)

var payload = []byte("hello from the bench backend\n")

// backend is the bench backend's handler: a fixed small answer.
func backend() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.Write(payload)
	}))
}

// lbHandler builds lb's public handler from the packages' exported APIs the way
// cmd/lb wires it: logging.Middleware (JSON to io.Discard, client IP from the
// resolver) around balancer.Proxy over a round-robin pool of the given backends.
func lbHandler(tb testing.TB, backends []string, withLog bool) http.Handler {
	tb.Helper()
	proxy, logger, resolver := lbProxy(tb, backends)
	if !withLog {
		return proxy
	}
	return logging.Middleware(logger, resolver.ClientIP)(proxy)
}

// lbProxy builds balancer.Proxy over a round-robin pool of the given backends, with the JSON
// logger (to io.Discard) and client address resolver cmd/lb gives it.
func lbProxy(tb testing.TB, backends []string) (*balancer.Proxy, *slog.Logger, *clientip.Resolver) {
	tb.Helper()
	pool, err := balancer.NewPool(balancer.PoolOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for i, u := range backends {
		name := "b" + string(rune('1'+i))
		if _, err := pool.Add(name, u); err != nil {
			tb.Fatal(err)
		}
		pool.SetHealthy(name, true)
	}
	policy, err := balancer.NewPolicy("round_robin")
	if err != nil {
		tb.Fatal(err)
	}
	resolver, err := clientip.NewResolver(nil)
	if err != nil {
		tb.Fatal(err)
	}
	logger, err := logging.New(io.Discard, logging.Options{Format: "json"})
	if err != nil {
		tb.Fatal(err)
	}
	proxy := balancer.NewProxy(pool, policy, balancer.ProxyConfig{
		DialTimeout: 2 * time.Second, PerTryTimeout: 5 * time.Second, MaxRetries: 2,
		RetryBudget: 0.2, RetryBodyBytes: 64 << 10, TrustedProxies: resolver,
	}, nil, logger)
	return proxy, logger, resolver
}

// fastFront serves the Proxy on loopback through balancer.FastPath, as cmd/lb does for plain
// HTTP/1 connections, and returns its base URL. The benchmark's requests never need the
// net/http handoff: one fails the benchmark.
func fastFront(b *testing.B, backends []string, withLog bool) string {
	proxy, logger, _ := lbProxy(b, backends)
	opts := balancer.FastPathOptions{}
	if withLog {
		opts.Log = logging.NewRequestLog(logger)
	}
	fp := balancer.NewFastPath(proxy, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close(); fp.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fp.ServeConn(c, func(c net.Conn) {
				b.Error("fast path handed a benchmark request to net/http")
				c.Close()
			})
		}
	}()
	return "http://" + ln.Addr().String()
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}
func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(p []byte) { b.p.Put(&p) }

// bareProxy is a minimal round-robin httputil.ReverseProxy (Rewrite with
// X-Forwarded-For), the floor of what a ReverseProxy-based lb can cost.
func bareProxy(tb testing.TB, backends []string, flush time.Duration, pool httputil.BufferPool) http.Handler {
	tb.Helper()
	var targets []*url.URL
	for _, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			tb.Fatal(err)
		}
		targets = append(targets, u)
	}
	var mu sync.Mutex
	next := 0
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 60 * time.Second}
	return &httputil.ReverseProxy{
		Transport:     tr,
		FlushInterval: flush,
		BufferPool:    pool,
		Rewrite: func(pr *httputil.ProxyRequest) {
			mu.Lock()
			u := targets[next%len(targets)]
			next++
			mu.Unlock()
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
	}
}

// drive sends b.N GET requests to base from parallel keep-alive clients.
func drive(b *testing.B, base string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(base + "/")
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != int64(len(payload)) {
				b.Errorf("got status %d, %d bytes; want 200, %d", resp.StatusCode, n, len(payload))
				return
			}
		}
	})
}

func startBackends(b *testing.B) []string {
	var urls []string
	for range 3 {
		s := backend()
		b.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	return urls
}

func front(b *testing.B, h http.Handler) string {
	s := httptest.NewServer(h)
	b.Cleanup(s.Close)
	return s.URL
}

// BenchmarkRequest compares one request's cost through each path. The proxy's
// own cost is a row minus "direct" (client and backend run in this process too).
func BenchmarkRequest(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		drive(b, startBackends(b)[0])
	})
	b.Run("lb", func(b *testing.B) {
		drive(b, front(b, lbHandler(b, startBackends(b), true)))
	})
	b.Run("lb-nolog", func(b *testing.B) {
		drive(b, front(b, lbHandler(b, startBackends(b), false)))
	})
	b.Run("lb-fast", func(b *testing.B) {
		drive(b, fastFront(b, startBackends(b), true))
	})
	b.Run("lb-fast-nolog", func(b *testing.B) {
		drive(b, fastFront(b, startBackends(b), false))
	})
	b.Run("reverseproxy-flush-1", func(b *testing.B) {
		drive(b, front(b, bareProxy(b, startBackends(b), -1, nil)))
	})
	b.Run("reverseproxy-nopool", func(b *testing.B) {
		drive(b, front(b, bareProxy(b, startBackends(b), 0, nil)))
	})
	b.Run("reverseproxy-pool", func(b *testing.B) {
		drive(b, front(b, bareProxy(b, startBackends(b), 0, newBufferPool())))
	})
}

// TestLBHandlerProxies checks that the benchmark's handler really proxies
// (status, body, X-Forwarded-For reaching the backend, round robin).
func TestLBHandlerProxies(t *testing.T) {
	seen := make(chan string, 3)
	var urls []string
	for i := range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen <- string(rune('1'+i)) + " " + r.Header.Get("X-Forwarded-For")
			w.Write(payload)
		}))
		defer s.Close()
		urls = append(urls, s.URL)
	}
	fs := httptest.NewServer(lbHandler(t, urls, true))
	defer fs.Close()
	var got []string
	for range 3 {
		resp, err := http.Get(fs.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != string(payload) {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, payload)
		}
		got = append(got, <-seen)
	}
	backendsHit := map[byte]bool{}
	for _, g := range got {
		backendsHit[g[0]] = true
		if !strings.HasSuffix(g, " 127.0.0.1") {
			t.Errorf("backend saw %q, want X-Forwarded-For 127.0.0.1", g)
		}
	}
	if len(backendsHit) != 3 {
		t.Errorf("got backends %v over 3 requests, want all 3 (round robin)", got)
	}
}
