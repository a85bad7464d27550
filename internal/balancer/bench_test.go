package balancer

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// discardWriter is a minimal ResponseWriter, so the benchmark measures the proxy itself.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func benchProxy(b testing.TB, backends int) (*Proxy, []*testBackend) {
	b.Helper()
	pool, err := NewPool(PoolOptions{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	var bes []*testBackend
	for i := range backends {
		be := newBackend(b, "be", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello, world\n")
		})
		bes = append(bes, be)
		name := "b" + strconv.Itoa(i)
		if _, err := pool.Add(name, be.URL); err != nil {
			b.Fatal(err)
		}
		pool.SetHealthy(name, true)
	}
	pol, _ := NewPolicy(PolicyLeastConn)
	return NewProxy(pool, pol, defaultConfig(), nil, slog.New(slog.DiscardHandler)), bes
}

// BenchmarkProxy is one GET through Proxy.ServeHTTP to an in-process backend over loopback.
func BenchmarkProxy(b *testing.B) {
	p, _ := benchProxy(b, 3)
	req := httptest.NewRequest(http.MethodGet, "http://lb.example/item", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkProxyPOST sends a small buffered (replayable) body.
func BenchmarkProxyPOST(b *testing.B) {
	p, _ := benchProxy(b, 3)
	w := &discardWriter{h: http.Header{}}
	body := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "http://lb.example/item", &sliceReader{b: body})
		clear(w.h)
		p.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// BenchmarkProxyHTTP is the whole path: client -> front server -> Proxy -> backend.
func BenchmarkProxyHTTP(b *testing.B) {
	p, _ := benchProxy(b, 3)
	front := httptest.NewServer(p)
	b.Cleanup(front.Close)
	client := front.Client()
	b.ReportAllocs()
	for b.Loop() {
		res, err := client.Get(front.URL + "/item")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

func BenchmarkPick(b *testing.B) {
	for _, name := range []string{PolicyRoundRobin, PolicyLeastConn, PolicyP2C} {
		for _, n := range []int{3, 16} {
			b.Run(name+"/"+strconv.Itoa(n), func(b *testing.B) {
				pol, err := NewPolicy(name)
				if err != nil {
					b.Fatal(err)
				}
				bs := testBackends(n)
				for i, x := range bs {
					x.inFlight.Store(int64(i % 3))
					x.ewmaNS.Store(int64(1000 + i))
				}
				b.ReportAllocs()
				for b.Loop() {
					if pol.Pick(bs) == nil {
						b.Fatal("nil pick")
					}
				}
			})
		}
	}
}
