package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// These tests drive the forwarding loop and lb's backend client directly, with testClient
// for a front end, against backends whose bytes a test writes itself.

// Connections are reused only after a complete answer and when neither side said close; HEAD,
// 204 and 304 answers have no body.
func TestBackendConnReuse(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		response  string
		wantBody  string
		wantConns int64
	}{
		{"keep-alive", "GET", okResponse, "ok", 1},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "ok", 1},
		{"server says close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", 3},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 3},
		{"until close", "GET", "HTTP/1.1 200 OK\r\n\r\nok" + closeMark, "ok", 3},
		{"HEAD with a length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "", 1},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", "", 1},
		{"304 with a length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "", 1},
		{"POST buffered body", "POST", okResponse, "ok", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := newRawBackend(t, answering(func(*http.Request) string { return tt.response }))
			p := clientProxy(t, 2*time.Second, rb.addr)
			body := ""
			if tt.method == "POST" {
				body = "payload"
			}
			for i := range 3 {
				c := &testClient{}
				out := forward(p, c, tt.method, body)
				if out.Gone || out.Broken || c.head == nil || c.body.String() != tt.wantBody || !c.finished {
					t.Fatalf("request %d: %+v, head %v, body %q", i, out, c.head, c.body.String())
				}
			}
			if got := rb.conns.Load(); got != tt.wantConns {
				t.Errorf("connections: got %d, want %d", got, tt.wantConns)
			}
		})
	}
}

// An answer whose client went away before its end closes its connection instead of
// returning it to the pool, and is a 499, not the backend's fault.
func TestClientGoneMidBodyClosesBackendConn(t *testing.T) {
	rb := newRawBackend(t, answering(func(*http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789" }))
	p := clientProxy(t, 2*time.Second, rb.addr)
	c := &testClient{failAt: 5}
	if out := forward(p, c, "GET", ""); !out.Gone || out.Code != 499 {
		t.Fatalf("outcome %+v, want gone 499", out)
	}
	if n := p.pool.IdleConns("b0"); n != 0 {
		t.Errorf("idle connections after an abandoned body: %d, want 0", n)
	}
	if out := forward(p, &testClient{}, "GET", ""); out.Code != 200 {
		t.Fatalf("next request: %+v", out)
	}
	if got := rb.conns.Load(); got != 2 {
		t.Errorf("connections: got %d, want 2", got)
	}
	if st, _ := p.pool.Get("b0"); st.Failures != 0 {
		t.Errorf("failures %d, want 0", st.Failures)
	}
}

// The backend closes a connection while it is idle: the close is seen before the connection
// is used, and the request goes on a new one, whatever its method.
func TestStaleIdleConnection(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			served := make(chan net.Conn, 4)
			rb := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
				req, err := http.ReadRequest(br)
				if err != nil {
					c.Close()
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, okResponse)
				served <- c // the test closes it while it is idle in lb's pool
			})
			p := clientProxy(t, 2*time.Second, rb.addr)
			if out := forward(p, &testClient{}, method, "payload"); out.Code != 200 {
				t.Fatal(out)
			}
			waitFor(t, 5*time.Second, "connection idle", func() bool { return p.pool.IdleConns("b0") == 1 })
			_ = (<-served).Close()
			b, _ := p.pool.lookup("b0")
			waitFor(t, 5*time.Second, "the close seen on lb's side", func() bool {
				b.conns.mu.Lock()
				defer b.conns.mu.Unlock()
				return len(b.conns.idle) == 1 && !b.conns.idle[0].open()
			})
			c := &testClient{}
			if out := forward(p, c, method, "payload"); out.Code != 200 || c.body.String() != "ok" {
				t.Fatalf("after the backend closed the idle connection: %+v %q, want 200 ok", out, c.body.String())
			}
			if n := rb.conns.Load(); n != 2 {
				t.Errorf("connections: got %d, want 2", n)
			}
		})
	}
}

// A request that breaks on a new connection is a failed attempt (the loop decides what
// next): a reset, and the one backend is tried once.
func TestBrokenOnNewConnection(t *testing.T) {
	rb := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = http.ReadRequest(br)
		_ = c.Close() // reads the request, answers nothing
	})
	p := clientProxy(t, 2*time.Second, rb.addr)
	c := &testClient{}
	if out := forward(p, c, "GET", ""); out.Code != http.StatusBadGateway || c.head.Code != 502 {
		t.Fatalf("outcome %+v, want lb's 502", out)
	}
	if n := rb.conns.Load(); n != 1 {
		t.Errorf("connections: got %d, want 1 (no second try on a new connection)", n)
	}
}

// Interim answers pass to the client as they come (but 100 Continue, which lb answers
// itself); more than five make the attempt fail.
func TestInterimAnswers(t *testing.T) {
	rb := newRawBackend(t, answering(func(r *http.Request) string {
		if r.URL.Path == "/many" {
			return strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 6) + okResponse
		}
		return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + okResponse
	}))
	p := clientProxy(t, 2*time.Second, rb.addr)
	for range 2 {
		c := &testClient{}
		if out := forward(p, c, "POST", "payload"); out.Code != 200 || c.body.String() != "ok" {
			t.Fatalf("got %+v %q, want 200 ok", out, c.body.String())
		}
		if len(c.interim) != 1 || c.interim[0] != 103 {
			t.Errorf("interim answers %v, want [103]", c.interim)
		}
	}
	if n := rb.conns.Load(); n != 1 {
		t.Errorf("connections: got %d, want 1", n)
	}
}

// The per-try timeout runs from the request written to the answer's head: a frozen backend
// is a timeout (504), a slow body is not cut.
func TestPerTryTimeout(t *testing.T) {
	release := make(chan struct{})
	rb := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		defer c.Close()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/" {
			<-release
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(300 * time.Millisecond) // a slow producer, longer than the per-try timeout
		_, _ = io.WriteString(c, "cd")
	})
	t.Cleanup(func() { close(release) })
	p := clientProxy(t, 100*time.Millisecond, rb.addr)
	start := time.Now()
	if out := forward(p, &testClient{}, "POST", "x"); out.Code != http.StatusGatewayTimeout {
		t.Fatalf("frozen backend: %+v, want 504", out)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timed out after %s, want about 100ms", d)
	}
	var o Outgoing
	req := Request{Method: "GET", Path: "/slow", Begin: time.Now(), BodySrc: stringBody{strings.NewReader("")}}
	o.Begin(p, netip.MustParseAddr("192.0.2.1"), []byte("GET"), []byte("/slow"), []byte("h"), false, nil)
	o.Finish(p, &req, false)
	c := &testClient{}
	var st Forwarding
	if out := p.Forward(&st, &req, c); out.Code != 200 || c.body.String() != "abcd" {
		t.Errorf("slow body: %+v %q, want 200 abcd (the per-try timeout must not bound it)", out, c.body.String())
	}
}

// A client that goes away while its request waits on the backend aborts the exchange at once.
func TestClientGoneAbortsTheWait(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	rb := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		defer c.Close()
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		arrived <- struct{}{}
		<-release
	})
	t.Cleanup(func() { close(release) })
	p := clientProxy(t, 10*time.Second, rb.addr)
	c := &testClient{}
	go func() {
		<-arrived
		c.leave()
	}()
	start := time.Now()
	if out := forward(p, c, "GET", ""); !out.Gone || out.Code != 499 {
		t.Fatalf("outcome %+v, want gone 499", out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the abort took %s", d)
	}
	if st, _ := p.pool.Get("b0"); st.Failures != 0 || st.InFlight != 0 {
		t.Errorf("failures %d, in flight %d; want 0 and 0", st.Failures, st.InFlight)
	}
}

// Idle connections close after the idle timeout and when the backend is drained.
func TestIdleConnectionsExpire(t *testing.T) {
	rb := newRawBackend(t, answering(func(*http.Request) string { return okResponse }))
	p := clientProxy(t, 2*time.Second, rb.addr)
	b, _ := p.pool.lookup("b0")
	b.conns.idleTimeout = 50 * time.Millisecond
	if out := forward(p, &testClient{}, "GET", ""); out.Code != 200 {
		t.Fatal(out)
	}
	waitFor(t, 5*time.Second, "the idle connection to expire", func() bool { return p.pool.IdleConns("b0") == 0 })
	b.conns.idleTimeout = time.Minute
	if out := forward(p, &testClient{}, "GET", ""); out.Code != 200 {
		t.Fatal(out)
	}
	if p.pool.IdleConns("b0") != 1 {
		t.Fatal("no idle connection after a request")
	}
	_, _ = p.pool.Drain("b0")
	if n := p.pool.IdleConns("b0"); n != 0 {
		t.Errorf("idle connections after a drain: %d", n)
	}
}

// A dial failure is retried on another backend, even for a POST.
func TestDialErrorRetriedForAnyMethod(t *testing.T) {
	rb := newRawBackend(t, answering(func(*http.Request) string { return okResponse }))
	dead := strings.TrimPrefix(deadURL(t), "http://")
	p := clientProxy(t, 2*time.Second, dead, rb.addr)
	c := &testClient{}
	if out := forward(p, c, "POST", "payload"); out.Code != 200 || c.body.String() != "ok" {
		t.Fatalf("got %+v %q, want 200 ok from the second backend", out, c.body.String())
	}
}

// Bytes a backend sends on a connection while it is idle in lb's pool (a wrong
// Content-Length, a body after a 204) answer nothing: the connection is not reused, so the
// next request never reads them as its own answer.
func TestUnsolicitedBytesOnIdleConnection(t *testing.T) {
	rb := newRawBackend(t, answering(func(r *http.Request) string {
		return "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	}))
	p := clientProxy(t, 2*time.Second, rb.addr)
	for i := range 3 {
		c := &testClient{}
		if out := forward(p, c, "GET", ""); out.Code != 204 || c.body.String() != "" {
			t.Fatalf("request %d: %+v %q, want 204 and no body", i, out, c.body.String())
		}
	}
	if got := rb.conns.Load(); got != 3 {
		t.Errorf("connections %d, want 3: one carrying unasked bytes is never reused", got)
	}
}

// A 101 to a request that asked for no upgrade fails the attempt and closes the connection.
func TestUnasked101(t *testing.T) {
	rb := newRawBackend(t, answering(func(*http.Request) string {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"
	}))
	p := clientProxy(t, 2*time.Second, rb.addr)
	c := &testClient{}
	if out := forward(p, c, "GET", ""); out.Code != http.StatusBadGateway {
		t.Fatalf("outcome %+v, want 502", out)
	}
	if n := p.pool.IdleConns("b0"); n != 0 {
		t.Errorf("idle connections %d, want 0", n)
	}
}

// An answer's head is bounded (10 MiB, as http.Transport): a backend that sends header bytes
// without end fails at the limit rather than when the per-try timeout ends.
func TestResponseHeadLimit(t *testing.T) {
	rb := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		defer c.Close()
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX: ")
		line := []byte(strings.Repeat("a", 64<<10))
		for range 200 { // 12.5 MiB
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	})
	p := clientProxy(t, time.Minute, rb.addr)
	start := time.Now()
	if out := forward(p, &testClient{}, "POST", "x"); out.Code != http.StatusBadGateway {
		t.Fatalf("outcome %+v, want 502", out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s", d)
	}
}

// A chunked answer reaches the client as data, then its trailer fields.
func TestChunkedAnswerAndTrailers(t *testing.T) {
	rb := newRawBackend(t, answering(func(*http.Request) string {
		return "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"
	}))
	p := clientProxy(t, 2*time.Second, rb.addr)
	c := &testClient{}
	if out := forward(p, c, "GET", ""); out.Code != 200 || c.body.String() != "abcde" || c.trailers["X-Sum"] != "5" {
		t.Fatalf("got %+v %q trailers %v", out, c.body.String(), c.trailers)
	}
	if c.head.Length != -1 || !c.head.Chunked || c.fields["Trailer"] != "X-Sum" {
		t.Errorf("head %+v fields %v, want unknown length, chunked, Trailer passed on", c.head, c.fields)
	}
}
