package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend is a TCP server whose connections a test handles byte by byte.
type rawBackend struct {
	ln     net.Listener
	addr   string
	conns  atomic.Int64  // connections accepted
	closed chan struct{} // one value per connection whose peer (lb) closed it
	mu     sync.Mutex
	open   []net.Conn
	wg     sync.WaitGroup
}

// newRawBackend serves every connection with handle (which returns when it is done with it).
func newRawBackend(t *testing.T, handle func(rb *rawBackend, c net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{ln: ln, addr: ln.Addr().String(), closed: make(chan struct{}, 64)}
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
				handle(rb, c, bufio.NewReader(c))
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

// serveLoop answers each request on the connection with respond's raw bytes until the peer
// closes (reported on rb.closed) or respond returns "" (the handler then closes).
func (rb *rawBackend) serveLoop(respond func(req *http.Request) string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		defer c.Close()
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				if errors.Is(err, io.EOF) {
					rb.closed <- struct{}{}
				}
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			out := respond(req)
			if out == "" {
				return
			}
			if _, err := io.WriteString(c, out); err != nil {
				return
			}
		}
	}
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func newTestSyncTransport(addr string, perTry time.Duration) *syncTransport {
	return newSyncTransport(addr, newDial(func() time.Duration { return time.Second }), func() time.Duration { return perTry })
}

// roundTrip sends one request through st and reads the whole body.
func roundTrip(ctx context.Context, st *syncTransport, method, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+st.addr+"/", rd)
	if err != nil {
		return 0, "", err
	}
	res, err := st.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// Connections are reused only after a body read to EOF and when neither side said close;
// HEAD, 204 and 304 answers have no body.
func TestSyncTransportReuse(t *testing.T) {
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
		{"HEAD with a length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "", 1},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", "", 1},
		{"304 with a length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "", 1},
		{"POST buffered body", "POST", okResponse, "ok", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := newRawBackend(t, func(rb *rawBackend, c net.Conn, br *bufio.Reader) {
				rb.serveLoop(func(*http.Request) string { return tt.response })(c, br)
			})
			st := newTestSyncTransport(rb.addr, 2*time.Second)
			t.Cleanup(st.CloseIdleConnections)
			body := ""
			if tt.method == "POST" {
				body = "payload"
			}
			for i := range 3 {
				code, got, err := roundTrip(context.Background(), st, tt.method, body)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if code/100 != 2 && code != 304 || got != tt.wantBody {
					t.Fatalf("request %d: got %d %q, want %q", i, code, got, tt.wantBody)
				}
			}
			if got := rb.conns.Load(); got != tt.wantConns {
				t.Errorf("connections: got %d, want %d", got, tt.wantConns)
			}
		})
	}
}

// A body abandoned before its end closes the connection instead of returning it to the pool.
func TestSyncTransportAbandonedBodyNotReused(t *testing.T) {
	rb := newRawBackend(t, func(rb *rawBackend, c net.Conn, br *bufio.Reader) {
		rb.serveLoop(func(*http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789" })(c, br)
	})
	st := newTestSyncTransport(rb.addr, 2*time.Second)
	req, _ := http.NewRequest("GET", "http://"+rb.addr+"/", nil)
	res, err := st.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if n := st.idleCount(); n != 0 {
		t.Errorf("idle connections after an abandoned body: %d, want 0", n)
	}
	if _, _, err := roundTrip(context.Background(), st, "GET", ""); err != nil {
		t.Fatal(err)
	}
	if got := rb.conns.Load(); got != 2 {
		t.Errorf("connections: got %d, want 2", got)
	}
}

// The backend closes a connection while it is idle: a replayable request is retried once on
// a new connection; one net/http would not replay never goes out on the closed connection.
func TestSyncTransportStaleIdleConnection(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			served := make(chan net.Conn, 4)
			rb := newRawBackend(t, func(_ *rawBackend, c net.Conn, br *bufio.Reader) {
				req, err := http.ReadRequest(br)
				if err != nil {
					c.Close()
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, okResponse)
				served <- c // the test closes it while it is idle in lb's pool
			})
			st := newTestSyncTransport(rb.addr, 2*time.Second)
			t.Cleanup(st.CloseIdleConnections)
			body := ""
			if method == "POST" {
				body = "payload"
			}
			if _, _, err := roundTrip(context.Background(), st, method, body); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "connection idle", func() bool { return st.idleCount() == 1 })
			c := <-served
			_ = c.Close()
			waitFor(t, 5*time.Second, "the close seen on lb's side", func() bool {
				st.mu.Lock()
				defer st.mu.Unlock()
				return len(st.idle) == 1 && !st.idle[0].open()
			})
			code, got, err := roundTrip(context.Background(), st, method, body)
			if err != nil || code != 200 || got != "ok" {
				t.Fatalf("after the backend closed the idle connection: %d %q %v, want 200 ok", code, got, err)
			}
			if n := rb.conns.Load(); n != 2 {
				t.Errorf("connections: got %d, want 2", n)
			}
		})
	}
}

// A request that breaks on a new connection is not retried by the transport (the proxy
// decides), and one on a reused connection only once.
func TestSyncTransportNoRetryOnNewConnection(t *testing.T) {
	rb := newRawBackend(t, func(_ *rawBackend, c net.Conn, br *bufio.Reader) {
		_, _ = http.ReadRequest(br)
		_ = c.Close() // reads the request, answers nothing
	})
	st := newTestSyncTransport(rb.addr, 2*time.Second)
	_, _, err := roundTrip(context.Background(), st, "GET", "")
	if err == nil {
		t.Fatal("got an answer from a backend that closed without one")
	}
	if reason := classify(err); reason != reasonReset {
		t.Errorf("classified %q (%v), want %q", reason, err, reasonReset)
	}
	if n := rb.conns.Load(); n != 1 {
		t.Errorf("connections: got %d, want 1 (no retry on a new connection)", n)
	}
}

// Interim 1xx answers are skipped (and reported to a ClientTrace, as ReverseProxy needs).
func TestSyncTransportSkips1xx(t *testing.T) {
	rb := newRawBackend(t, func(rb *rawBackend, c net.Conn, br *bufio.Reader) {
		rb.serveLoop(func(*http.Request) string {
			return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + okResponse
		})(c, br)
	})
	st := newTestSyncTransport(rb.addr, 2*time.Second)
	t.Cleanup(st.CloseIdleConnections)
	var got1xx []int
	var link string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got1xx = append(got1xx, code)
			if code == 103 {
				link = h.Get("Link")
			}
			return nil
		},
	})
	for range 2 {
		code, body, err := roundTrip(ctx, st, "POST", "payload")
		if err != nil || code != 200 || body != "ok" {
			t.Fatalf("got %d %q %v, want 200 ok", code, body, err)
		}
	}
	if len(got1xx) != 4 || got1xx[0] != 100 || got1xx[1] != 103 || link != "</a.css>" {
		t.Errorf("1xx seen: %v link %q, want [100 103 100 103] </a.css>", got1xx, link)
	}
	if n := rb.conns.Load(); n != 1 {
		t.Errorf("connections: got %d, want 1", n)
	}
}

// The per-try timeout runs from request written to response headers; a frozen backend gives a
// timeout error, a slow body is not cut.
func TestSyncTransportPerTryTimeout(t *testing.T) {
	release := make(gate)
	rb := newRawBackend(t, func(_ *rawBackend, c net.Conn, br *bufio.Reader) {
		defer c.Close()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/slow-body" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
			<-time.After(300 * time.Millisecond) // a slow producer, longer than the per-try timeout
			_, _ = io.WriteString(c, "cd")
		}
		<-release
	})
	release.openAtEnd(t)
	st := newTestSyncTransport(rb.addr, 100*time.Millisecond)
	start := time.Now()
	_, _, err := roundTrip(context.Background(), st, "GET", "")
	if err == nil || classify(err) != reasonTimeout {
		t.Fatalf("frozen backend: got %v (%s), want a timeout", err, classify(err))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timed out after %s, want about 100ms", d)
	}
	req, _ := http.NewRequest("GET", "http://"+rb.addr+"/slow-body", nil)
	res, err := st.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "abcd" {
		t.Errorf("slow body: got %q %v, want abcd (the per-try timeout must not bound it)", b, err)
	}
}

// The request's context ending aborts a blocked read of the head or of the body.
func TestSyncTransportContextCancel(t *testing.T) {
	release := make(gate)
	rb := newRawBackend(t, func(_ *rawBackend, c net.Conn, br *bufio.Reader) {
		defer c.Close()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/mid-body" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
		}
		<-release
	})
	release.openAtEnd(t)
	st := newTestSyncTransport(rb.addr, 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := roundTrip(ctx, st, "GET", "")
		errc <- err
	}()
	waitFor(t, 5*time.Second, "request at the backend", func() bool { return rb.conns.Load() == 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("head: got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling did not abort the wait for the head")
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+rb.addr+"/mid-body", nil)
	res, err := st.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	go cancel()
	if _, err := io.ReadAll(res.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("body: got %v, want context.Canceled", err)
	}
	_ = res.Body.Close()
	if n := st.idleCount(); n != 0 {
		t.Errorf("idle connections after a cancelled body: %d, want 0", n)
	}
}

// Idle connections close after the idle timeout and on CloseIdleConnections.
func TestSyncTransportIdleClose(t *testing.T) {
	rb := newRawBackend(t, func(rb *rawBackend, c net.Conn, br *bufio.Reader) {
		rb.serveLoop(func(*http.Request) string { return okResponse })(c, br)
	})
	st := newTestSyncTransport(rb.addr, 2*time.Second)
	st.idleTimeout = 50 * time.Millisecond
	if _, _, err := roundTrip(context.Background(), st, "GET", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rb.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection not closed after the idle timeout")
	}
	if n := st.idleCount(); n != 0 {
		t.Errorf("idle connections: %d, want 0", n)
	}

	st.mu.Lock()
	st.idleTimeout = time.Minute
	st.mu.Unlock()
	if _, _, err := roundTrip(context.Background(), st, "GET", ""); err != nil {
		t.Fatal(err)
	}
	st.CloseIdleConnections()
	select {
	case <-rb.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseIdleConnections did not close the idle connection")
	}
}

// A dial failure is a dialError (retried on another backend whatever the method).
func TestSyncTransportDialError(t *testing.T) {
	st := newTestSyncTransport(strings.TrimPrefix(deadURL(t), "http://"), time.Second)
	_, _, err := roundTrip(context.Background(), st, "POST", "x")
	if reason := classify(err); reason != reasonDial {
		t.Errorf("classified %q (%v), want %q", reason, err, reasonDial)
	}
}

func TestSyncEligible(t *testing.T) {
	body := func(getBody bool) *http.Request {
		r, _ := http.NewRequest("POST", "http://x/", strings.NewReader("abc"))
		if !getBody {
			r.GetBody = nil
		}
		return r
	}
	upgrade, _ := http.NewRequest("GET", "http://x/", nil)
	upgrade.Header.Set("Upgrade", "websocket")
	expect := body(true)
	expect.Header.Set("Expect", "100-continue")
	get, _ := http.NewRequest("GET", "http://x/", nil)
	tests := []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"no body", get, true},
		{"buffered body", body(true), true},
		{"streamed body", body(false), false},
		{"upgrade", upgrade, false},
		{"expect", expect, false},
	}
	for _, tt := range tests {
		if got := syncEligible(tt.r); got != tt.want {
			t.Errorf("%s: got %t, want %t", tt.name, got, tt.want)
		}
	}
}
