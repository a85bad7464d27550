package balancer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"outrigger/internal/h1"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rawBackend is a TCP server whose connections a test handles byte by byte.
type rawBackend struct {
	ln    net.Listener
	addr  string
	conns atomic.Int64 // connections accepted
	mu    sync.Mutex
	open  []net.Conn
	wg    sync.WaitGroup
}

// newRawBackend serves every connection with handle (which returns when it is done with it).
func newRawBackend(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{ln: ln, addr: ln.Addr().String()}
	rb.wg.Add(1)
	go func() {
		defer rb.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rb.conns.Add(1)
			rb.mu.Lock()
			rb.open = append(rb.open, c)
			rb.mu.Unlock()
			rb.wg.Add(1)
			go func() {
				defer rb.wg.Done()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		rb.mu.Lock()
		for _, c := range rb.open {
			_ = c.Close()
		}
		rb.mu.Unlock()
		rb.wg.Wait()
	})
	return rb
}

// answering returns a handler that answers each request with respond's raw bytes until the
// peer closes, or respond returns "" (the handler then closes). An answer ending in
// closeMark is sent without it, and the connection is closed after it.
func answering(respond func(req *http.Request) string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		defer c.Close()
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			out := respond(req)
			if out == "" {
				return
			}
			out, closing := strings.CutSuffix(out, closeMark)
			if _, err := io.WriteString(c, out); err != nil || closing {
				return
			}
		}
	}
}

// closeMark ends an answer after which answering closes the connection.
const closeMark = "<close>"

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// testClient is a balancer.Client that records the answer.
type testClient struct {
	interim  []int
	head     *ResponseHead
	fields   map[string]string
	body     strings.Builder
	trailers map[string]string
	finished bool
	aborted  bool
	failAt   int // Write fails once the body reaches this length (0: never)

	mu      sync.Mutex
	aborter Aborter
	gone    bool
}

func (c *testClient) Watch(a Aborter) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborter = a
	return !c.gone
}

func (c *testClient) Unwatch() {
	c.mu.Lock()
	c.aborter = nil
	c.mu.Unlock()
}

// leave makes the client go away, aborting the exchange in progress.
func (c *testClient) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = true
	if c.aborter != nil {
		c.aborter.Abort()
	}
}

func (c *testClient) Gone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gone
}

func (c *testClient) Interim(h *ResponseHead) error {
	c.interim = append(c.interim, h.Code)
	return nil
}

func (c *testClient) Start(h *ResponseHead) error {
	c.head = h
	c.fields = map[string]string{}
	for _, f := range h.Fields {
		c.fields[string(f.Name)] = string(f.Value)
	}
	return nil
}

func (c *testClient) Write(p []byte) error {
	if c.failAt > 0 && c.body.Len()+len(p) >= c.failAt {
		c.leave()
		return errors.New("client gone")
	}
	c.body.Write(p)
	return nil
}

func (c *testClient) Flush() error { return nil }

func (c *testClient) Finish(trailers []h1.Field) error {
	c.finished = true
	c.trailers = map[string]string{}
	for _, f := range trailers {
		c.trailers[string(f.Name)] = string(f.Value)
	}
	return nil
}

func (c *testClient) Abort() { c.aborted = true }

func (c *testClient) Upgrade() (net.Conn, []byte, error) {
	return nil, nil, errors.New("testClient cannot upgrade")
}

// stringBody is a BodySource of a string.
type stringBody struct{ *strings.Reader }

func (stringBody) Interrupt() {}

// clientProxy returns a proxy over backends at the given addresses (named b0, b1...), all
// healthy, with a per-try timeout of perTry.
func clientProxy(t *testing.T, perTry time.Duration, addrs ...string) *Proxy {
	t.Helper()
	pool, err := NewPool(PoolOptions{Registerer: prometheus.NewRegistry(), PerTryTimeout: perTry})
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		name := "b" + string(rune('0'+i))
		if _, err := pool.Add(name, "http://"+a); err != nil {
			t.Fatal(err)
		}
		pool.SetHealthy(name, true)
	}
	t.Cleanup(func() {
		for _, st := range pool.Snapshot() {
			_, _ = pool.Drain(st.Name) // closes the idle connections
		}
	})
	return NewProxy(pool, &RoundRobin{}, ProxyConfig{MaxRetries: 1, RetryBudget: 1, RetryBodyBytes: 64 << 10, PerTryTimeout: perTry}, nil, nil)
}

// forward sends one request with method and body through p to c.
func forward(p *Proxy, c *testClient, method, body string) Outcome {
	var o Outgoing
	req := Request{Method: method, Path: "/", Begin: time.Now(), BodyLength: int64(len(body)), Framed: body != ""}
	req.BodySrc = stringBody{strings.NewReader(body)}
	o.Begin(p, netip.MustParseAddr("192.0.2.1"), []byte(method), []byte("/"), []byte("h"), false, nil)
	o.Finish(p, &req, false)
	var st Forwarding
	return p.Forward(&st, &req, c)
}
