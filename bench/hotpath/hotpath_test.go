package hotpath

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/balancer"
	"outrigger/internal/clientip"
	"outrigger/internal/frontend"
	"outrigger/internal/lbtest"
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

// lbProxy builds balancer.Proxy over a round-robin pool of the given backends, with the JSON
// logger (to io.Discard, nil without the access log) and the client address resolver cmd/lb
// gives it.
func lbProxy(tb testing.TB, backends []string, withLog bool) *balancer.Proxy {
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
	var logger *slog.Logger
	if withLog {
		if logger, err = logging.New(io.Discard, logging.Options{Format: "json"}); err != nil {
			tb.Fatal(err)
		}
	}
	return balancer.NewProxy(pool, policy, balancer.ProxyConfig{
		DialTimeout: 2 * time.Second, PerTryTimeout: 5 * time.Second, MaxRetries: 2,
		RetryBudget: 0.2, RetryBodyBytes: 64 << 10, TrustedProxies: resolver,
	}, nil, logger)
}

// lbFront serves a Proxy over backends on loopback with lb's front end, as cmd/lb wires it
// for plain HTTP (netHTTP: LB_FAST_PATH=off), and returns its base URL.
func lbFront(tb testing.TB, backends []string, withLog, netHTTP bool) string {
	tb.Helper()
	return lbServe(tb, backends, withLog, netHTTP, nil)
}

// lbServe is lbFront, over TLS with tlsConf if it is set (HTTP/2 and HTTP/1.1 by ALPN).
func lbServe(tb testing.TB, backends []string, withLog, netHTTP bool, tlsConf *tls.Config) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	fl := frontend.New(frontend.Options{Name: "http", Listener: ln, Proxy: lbProxy(tb, backends, withLog), NetHTTPOnly: netHTTP, TLS: tlsConf,
		Settings: func() frontend.Settings {
			return frontend.Settings{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
				BodyReadTimeout: time.Minute, WriteTimeout: time.Minute}
		}})
	fl.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fl.Shutdown(ctx)
	})
	if tlsConf != nil {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

// serverTLS returns a TLS configuration with a self-signed certificate, offering HTTP/2.
func serverTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	certFile, keyFile, _ := lbtest.SelfSigned(tb, tb.TempDir(), 1, time.Hour, "localhost")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
}

// h2Transport is a client transport speaking HTTP/2 over TLS (the bench's certificate is
// not verified).
func h2Transport() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 256, DisableCompression: true}
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
	driveWith(b, base, &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true})
}

// driveWith is drive with the client transport tr.
func driveWith(b *testing.B, base string, tr *http.Transport) {
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	cpu := processCPU()
	defer func() {
		// CPU time of the whole process (client, proxy and backends) per request: less
		// swayed than ns/op by what else runs on the machine.
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e3, "cpu-µs/op")
	}()
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

// processCPU returns the process's user and system CPU time so far, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func startBackends(b testing.TB) []string {
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
		drive(b, lbFront(b, startBackends(b), true, false))
	})
	b.Run("lb-nolog", func(b *testing.B) {
		drive(b, lbFront(b, startBackends(b), false, false))
	})
	b.Run("lb-nethttp", func(b *testing.B) {
		drive(b, lbFront(b, startBackends(b), true, true))
	})
	b.Run("lb-h2", func(b *testing.B) { // HTTP/2 over TLS in front, HTTP/1.1 behind
		driveWith(b, lbServe(b, startBackends(b), true, false, serverTLS(b)), h2Transport())
	})
	b.Run("lb-h2-nethttp", func(b *testing.B) { // the same on net/http's HTTP/2 server (LB_FAST_PATH=off)
		driveWith(b, lbServe(b, startBackends(b), true, true, serverTLS(b)), h2Transport())
	})
	b.Run("reverseproxy-h2", func(b *testing.B) { // the same through a bare ReverseProxy
		s := httptest.NewUnstartedServer(bareProxy(b, startBackends(b), 0, newBufferPool()))
		s.EnableHTTP2 = true
		s.StartTLS()
		b.Cleanup(s.Close)
		driveWith(b, s.URL, h2Transport())
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

// TestLBFrontProxies checks that the benchmark's lb really proxies (status, body,
// X-Forwarded-For reaching the backend, round robin), on both front ends.
func TestLBFrontProxies(t *testing.T) {
	for _, netHTTP := range []bool{false, true} {
		lbFrontProxies(t, netHTTP)
	}
}

func lbFrontProxies(t *testing.T, netHTTP bool) {
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
	base := lbFront(t, urls, true, netHTTP)
	var got []string
	for range 3 {
		resp, err := http.Get(base + "/x")
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
