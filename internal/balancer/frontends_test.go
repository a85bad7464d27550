package balancer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	. "outrigger/internal/balancer"
	"outrigger/internal/frontend"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoBackend answers by path: most paths echo the request as the backend saw it (method,
// target, Host, headers, body); others answer with one framing or another.
func echoBackend(t *testing.T) *testBackend {
	t.Helper()
	return newBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		switch r.URL.Path {
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "part one,")
			_ = http.NewResponseController(w).Flush()
			_, _ = io.WriteString(w, "part two")
			w.Header().Set("X-Sum", "42")
			return
		case "/close":
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			_, _ = brw.WriteString("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Seen-Request-Id: " + r.Header.Get("X-Request-Id") + "\r\n\r\nuntil the end")
			_ = brw.Flush()
			_ = c.Close()
			return
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/notmodified":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
			return
		case "/hints":
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			_, _ = io.WriteString(w, "after hints")
			return
		case "/named":
			w.Header().Set("Connection", "X-Private")
			w.Header().Set("X-Private", "hop")
			w.Header().Set("X-Public", "end")
			_, _ = io.WriteString(w, "named")
			return
		case "/error":
			http.Error(w, "teapot", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		var keys []string
		for k := range r.Header {
			if k != "X-Request-Id" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		fmt.Fprintf(w, "%s %s host=%s\n", r.Method, r.RequestURI, r.Host)
		for _, k := range keys {
			fmt.Fprintf(w, "%s: %q\n", k, r.Header[k])
		}
		fmt.Fprintf(w, "body=%q\n", body)
	})
}

// TestKeepAliveAndPipelining: requests on one connection, one after the other and several in
// one write, come back in order, a chunked one in the middle too.
func TestKeepAliveAndPipelining(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		be := echoBackend(t)
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		c, err := net.Dial("tcp", r.front.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		read := func(want string) {
			t.Helper()
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			if !strings.Contains(string(body), want) {
				t.Fatalf("got %d %q, want a body with %q", res.StatusCode, body, want)
			}
		}
		for i := range 3 {
			fmt.Fprintf(c, "GET /seq/%d HTTP/1.1\r\nHost: h\r\n\r\n", i)
			read(fmt.Sprintf("GET /seq/%d ", i))
		}
		var batch strings.Builder
		for i := range 5 {
			fmt.Fprintf(&batch, "GET /pipe/%d HTTP/1.1\r\nHost: h\r\n\r\n", i)
		}
		batch.WriteString("POST /pipe/body HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
		_, _ = io.WriteString(c, batch.String())
		for i := range 5 {
			read(fmt.Sprintf("GET /pipe/%d ", i))
		}
		read(`body="abc"`)
		// A chunked body, then the connection goes on.
		_, _ = io.WriteString(c, "POST /chunked-up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n")
		read(`body="xyz"`)
		read("GET /after ")
		if lines := r.lines(t, 11); len(lines) != 11 {
			t.Errorf("%d request lines, want 11", len(lines))
		}
	})
}

// TestBadResponses: a backend answer lb cannot pass on safely is a failed attempt (502, or a
// retry for a GET), never a response relayed half-parsed.
func TestBadResponses(t *testing.T) {
	answers := map[string]string{
		"/obsfold":   "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
		"/twolength": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"/gzipte":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
		"/status":    "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
		"/switch":    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
		"/badname":   "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok",
	}
	bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString(answers[r.URL.Path])
		_ = brw.Flush()
	})
	forEachFront(t, func(t *testing.T, front frontKind) {
		for path := range answers {
			t.Run(path, func(t *testing.T) {
				good := newBackend(t, "good", nil)
				cfg := defaultConfig()
				r := newRig(t, front, cfg, PolicyRoundRobin, bad.URL, good.URL)
				r.proxy.SetPolicy(&RoundRobin{}) // the bad backend first
				code, body := r.do(t, http.MethodGet, path, nil)
				if code != 200 || body != "good" {
					t.Errorf("GET: got %d %q, want the retry's 200 from the good backend", code, body)
				}
				cfg.MaxRetries = 0
				r.proxy.SetConfig(cfg)
				r.proxy.SetPolicy(&RoundRobin{})
				if code, body := r.do(t, http.MethodGet, path, nil); code != http.StatusBadGateway {
					t.Errorf("no retries: got %d %q, want 502", code, body)
				}
			})
		}
	})
}

// TestShutdown: Shutdown closes idle connections at once and lets a busy one finish its
// response, marked Connection: close.
func TestShutdown(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		release := make(chan struct{})
		arrived := make(chan struct{}, 1)
		be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				arrived <- struct{}{}
				<-release
			}
			_, _ = io.WriteString(w, "done")
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		var once sync.Once
		open := func() { once.Do(func() { close(release) }) }
		t.Cleanup(open) // before the backend's Close, which waits for its handlers
		addr := r.front.Addr()
		idle, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		_, _ = io.WriteString(idle, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		ibr := bufio.NewReader(idle)
		if res, err := http.ReadResponse(ibr, nil); err != nil {
			t.Fatal(err)
		} else {
			_, _ = io.Copy(io.Discard, res.Body)
		}
		busy, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
		<-arrived
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- r.front.ln.Shutdown(ctx)
		}()
		_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := ibr.ReadByte(); err != io.EOF {
			t.Errorf("idle connection: read %v, want EOF (closed by Shutdown)", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a request in flight", err)
		case <-time.After(100 * time.Millisecond):
		}
		open()
		res, err := http.ReadResponse(bufio.NewReader(busy), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != "done" || !res.Close {
			t.Errorf("busy connection: got %q close=%v, want \"done\" with Connection: close", body, res.Close)
		}
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

// TestLoopTimeouts: an idle kept-alive connection is closed after idle_timeout, and a
// request head that does not arrive within read_header_timeout (first or later request)
// closes the connection without an answer; new settings apply from the next request.
func TestLoopTimeouts(t *testing.T) {
	be := newBackend(t, "a", nil)
	r := newRig(t, frontLoop, defaultConfig(), PolicyRoundRobin, be.URL)
	r.set.Store(&frontend.Settings{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	addr := r.front.Addr()
	// closedWithin sends the first request if asked, then partial, and wants the server to
	// close within limit without another answer.
	closedWithin := func(name string, first bool, partial string, limit time.Duration) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		if first {
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
		}
		start := time.Now()
		_, _ = io.WriteString(c, partial)
		rest, err := io.ReadAll(br)
		if d := time.Since(start); err != nil || len(rest) > 0 || d > limit {
			t.Errorf("%s: read %q, %v after %v; want EOF, nothing, within %v", name, rest, err, d, limit)
		}
	}
	closedWithin("idle after a response", true, "", 2*time.Second)
	closedWithin("slow first head", false, "GET / HTTP/1.1\r\nHost: h\r\n", 2*time.Second)
	closedWithin("slow second head", true, "GET / HTTP/1.1\r\nHost: h\r\n", 2*time.Second)

	// Longer limits apply to the next request of a live connection.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if res, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, res.Body)
	}
	r.set.Store(&frontend.Settings{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute})
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if res, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, res.Body)
	}
	time.Sleep(600 * time.Millisecond) // past the old idle timeout, under the new one
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Errorf("after the settings changed: %v, want the connection kept for the new idle_timeout", err)
	}
}

// TestLargeBodies: bodies larger than every buffer on the way arrive whole and
// unchanged, whatever the backend's framing (Content-Length, chunked, until close), and the
// connection carries the next request after each.
func TestLargeBodies(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		big := make([]byte, 3<<20+17)
		for i := range big {
			big[i] = byte(i*7 + i>>11)
		}
		be := newBackend(t, "big", func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/length":
				w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				_, _ = w.Write(big)
			case "/chunked":
				for p := big; len(p) > 0; {
					n := min(len(p), 50_000)
					_, _ = w.Write(p[:n])
					_ = http.NewResponseController(w).Flush()
					p = p[n:]
				}
			case "/close":
				c, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
				_, _ = brw.Write(big)
				_ = brw.Flush()
				_ = c.Close()
			case "/echo": // a request body under retry_body_bytes, sent back
				body, _ := io.ReadAll(r.Body) // all of it before the answer, as HTTP/1 handlers must
				_, _ = w.Write(body)
			}
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, be.URL)
		c, err := net.Dial("tcp", r.front.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		upload := big[:defaultConfig().RetryBodyBytes]
		for _, path := range []string{"/length", "/chunked", "/close", "/echo", "/length"} {
			if path == "/echo" {
				fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(upload), upload)
			} else {
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path)
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			got, err := io.ReadAll(res.Body)
			want := big
			if path == "/echo" {
				want = upload
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("%s: %d bytes (%v), want %d bytes equal to what the backend sent", path, len(got), err, len(want))
			}
		}
	})
}
