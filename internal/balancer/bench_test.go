package balancer

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/h1"
)

// discardClient is a Client that keeps nothing, so the benchmarks measure the forwarding
// loop and the backend client themselves.
type discardClient struct{ code int }

func (c *discardClient) Watch(Aborter) bool                 { return true }
func (c *discardClient) Unwatch()                           {}
func (c *discardClient) Gone() bool                         { return false }
func (c *discardClient) Interim(*ResponseHead) error        { return nil }
func (c *discardClient) Start(h *ResponseHead) error        { c.code = h.Code; return nil }
func (c *discardClient) Write([]byte) error                 { return nil }
func (c *discardClient) Flush() error                       { return nil }
func (c *discardClient) Finish([]h1.Field) error            { return nil }
func (c *discardClient) Abort()                             {}
func (c *discardClient) Upgrade() (net.Conn, []byte, error) { return nil, nil, io.EOF }

// benchProxy returns a proxy over backends in-process backends answering "hello, world".
func benchProxy(b *testing.B, backends int) *Proxy {
	b.Helper()
	pool, err := NewPool(PoolOptions{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	for i := range backends {
		be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "hello, world\n")
		}))
		b.Cleanup(be.Close)
		name := "b" + strconv.Itoa(i)
		if _, err := pool.Add(name, be.URL); err != nil {
			b.Fatal(err)
		}
		pool.SetHealthy(name, true)
	}
	pol, _ := NewPolicy(PolicyLeastConn)
	return NewProxy(pool, pol, ProxyConfig{MaxRetries: 2, RetryBudget: 0.2, RetryBodyBytes: 64 << 10}, nil, nil)
}

// benchForward forwards method with body (a request head as h1 parsed it) b.N times.
func benchForward(b *testing.B, method string, body []byte) {
	p := benchProxy(b, 3)
	var (
		o   Outgoing
		st  Forwarding
		req Request
		c   discardClient
		r   h1.Request
	)
	head := []byte(method + " /item HTTP/1.1\r\nHost: lb.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	peer := netip.MustParseAddr("192.0.2.1")
	src := &byteBody{}
	b.ReportAllocs()
	for b.Loop() {
		if err := h1.ParseRequest(head, &r); err != nil {
			b.Fatal(err)
		}
		req = Request{Method: method, Path: "/item", Begin: time.Now(), BodyLength: int64(len(body)), Framed: len(body) > 0, BodySrc: src}
		src.b = body
		o.Begin(p, peer, r.Method, r.Origin, r.Host, false, nil)
		for i := range r.Fields {
			o.Field(&r.Fields[i])
		}
		o.Finish(p, &req, false)
		p.Forward(&st, &req, &c)
		if c.code != 200 {
			b.Fatalf("status %d", c.code)
		}
	}
}

// byteBody is a BodySource over a byte slice.
type byteBody struct{ b []byte }

func (r *byteBody) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *byteBody) Interrupt() {}

// BenchmarkForward is one GET through the forwarding loop to an in-process backend over
// loopback, from a parsed head.
func BenchmarkForward(b *testing.B) { benchForward(b, "GET", nil) }

// BenchmarkForwardPOST sends a small buffered (replayable) body.
func BenchmarkForwardPOST(b *testing.B) { benchForward(b, "POST", []byte(strings.Repeat("x", 1024))) }

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
