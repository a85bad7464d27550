package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// position is a place on a client connection where a request can arrive: after what.
type position struct {
	name   string
	prefix string // a request sent and answered first; "" for the first request
	method string // the prefix's method
}

// positions are the places DESIGN.md's protocol hygiene names: every rule holds at each.
var positions = []position{
	{"first", "", ""},
	{"after an HTTP/1.0 keep-alive request", "GET /pos/http10 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", "GET"},
	{"after a refused Upgrade", "GET /pos/upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET"},
	{"after a chunked body", "POST /pos/chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST"},
}

// at opens a connection and brings it to position p: the prefix request must be answered
// 200 by the backend and the connection kept.
func (r *recordedLB) at(t *testing.T, p position) *rawClient {
	t.Helper()
	rc := r.dial(t)
	if p.prefix == "" {
		return rc
	}
	if err := rc.send(p.prefix); err != nil {
		t.Fatalf("%s: sending the prefix: %v", p.name, err)
	}
	res, body := rc.mustResponse(p.method)
	if res.StatusCode != 200 || res.Close {
		t.Fatalf("%s: prefix answered %d (close %t) %q, want 200 and the connection kept", p.name, res.StatusCode, res.Close, body)
	}
	return rc
}

// The requests of the "Why", each sent at every position through every front end:
// lb refuses them with 400 and a close, and the backend receives nothing of them.
func TestRefusedFramingAtEveryPosition(t *testing.T) {
	refused := []struct{ name, req string }{
		{"empty Content-Length folded onto the next line",
			"POST /smuggle/fold HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 5\r\n\r\nhello"},
		{"empty Content-Length folded, the body a request",
			"POST /smuggle/fold2 HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 32\r\n\r\nGET /smuggle/inner HTTP/1.1\r\nH: x\r\n\r\n"},
		{"Content-Length and Transfer-Encoding",
			"POST /smuggle/clte HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"HTTP/1.0 with Transfer-Encoding, the body a request",
			"POST /smuggle/http10te HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\nGET /smuggle/inner HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"a CONNECT",
			"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nPOST /smuggle/connect HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"a 16-hex-digit chunk size",
			"POST /smuggle/hex16 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000003\r\nabc\r\n0\r\n\r\nPOST /smuggle/after HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	}
	forEachFrontCase(t, func(t *testing.T, fc frontCase) {
		l := startRecordedLB(t, fc, nil, "")
		for _, p := range positions {
			for _, tt := range refused {
				rc := l.at(t, p)
				if err := rc.send(tt.req); err != nil {
					t.Fatal(err)
				}
				rc.expectRefused(p.name+": "+tt.name, 400)
			}
		}
		l.noneRecorded(t, "/smuggle")
	})
}

// A GET pipelined behind a chunked POST gets the backend's answer to the GET, in order.
func TestPipelinedAfterChunkedBody(t *testing.T) {
	forEachFrontCase(t, func(t *testing.T, fc frontCase) {
		l := startRecordedLB(t, fc, nil, "")
		rc := l.dial(t)
		if err := rc.send("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
			"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		for i, want := range []struct{ method, body string }{{"POST", "1 POST /a 3"}, {"GET", "2 GET /b 0"}} {
			res, body := rc.mustResponse(want.method)
			if res.StatusCode != 200 || body != want.body {
				t.Errorf("response %d: got %d %q, want 200 %q", i+1, res.StatusCode, body, want.body)
			}
		}
	})
}

// read_header_timeout bounds a whole request head from the connection's start, even when lb
// passes the connection between its layers on the way (a TLS handshake, a head the fast path
// leaves to net/http): a head that is not complete in time is never served.
func TestHeadDeadlineHoldsAcrossHandOff(t *testing.T) {
	const timeout = time.Second
	step := 700 * time.Millisecond // two steps are well past the timeout, one well within
	forEachFrontCase(t, func(t *testing.T, fc frontCase) {
		l := startRecordedLB(t, fc, nil, fmt.Sprintf("limits:\n  read_header_timeout: %s\n", timeout))
		raw, err := net.Dial("tcp", l.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		c := raw
		if fc.tls {
			time.Sleep(step) // the handshake starts late, within the timeout
			tc := tls.Client(raw, l.tlsConfig("http/1.1"))
			if err := tc.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			c = tc
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = c.Write([]byte("POST /late HTTP/1.1\r\nHost: a\r\n"))
		if !fc.tls {
			time.Sleep(step)
			// A field the fast path leaves to net/http.
			_, _ = c.Write([]byte("Transfer-Encoding: chunked\r\n"))
		}
		time.Sleep(step)
		_, _ = c.Write([]byte("X: y\r\n\r\n0\r\n\r\n"))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			t.Errorf("a head completed %s after the connection began was answered %d, want the connection closed at read_header_timeout (%s)",
				2*step, res.StatusCode, timeout)
		}
		l.noneRecorded(t, "/late")
	})
}

// The backend's own Strict-Transport-Security never reaches a client beside lb's, on any
// protocol; a 204 or a 1xx from the backend goes on without Content-Length or Transfer-Encoding.
func TestResponseFieldRules(t *testing.T) {
	respond := func(w *bufio.Writer, r *lbtest.Recorded) bool {
		switch r.Target {
		case "/nocontent":
			w.WriteString("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n")
		case "/hints":
			w.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nContent-Length: 0\r\n\r\n")
			w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		default:
			w.WriteString("HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 2\r\n\r\nok")
		}
		return true
	}
	forEachFrontCase(t, func(t *testing.T, fc frontCase) {
		l := startRecordedLB(t, fc, respond, "")
		for _, path := range []string{"/nocontent", "/hints"} {
			rc := l.dial(t)
			if err := rc.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			for _, h := range rc.heads() {
				if !strings.HasPrefix(h, "HTTP/1.1 1") && !strings.HasPrefix(h, "HTTP/1.1 204") {
					continue
				}
				if lower := strings.ToLower(h); strings.Contains(lower, "\ncontent-length:") || strings.Contains(lower, "\ntransfer-encoding:") {
					t.Errorf("%s: head %q carries a framing field", path, h)
				}
			}
		}
		if !fc.tls {
			return
		}
		protos := [][]string{{"http/1.1"}}
		if fc.fast { // HTTP/2 is served by net/http whatever LB_FAST_PATH says: once is enough
			protos = append(protos, []string{"h2"})
		}
		for _, p := range protos {
			tr := &http.Transport{TLSClientConfig: l.tlsConfig(p...), ForceAttemptHTTP2: p[0] == "h2"}
			res, err := (&http.Client{Transport: tr}).Get("https://" + l.addr + "/hsts")
			if err != nil {
				t.Fatalf("%s: %v", p[0], err)
			}
			res.Body.Close()
			tr.CloseIdleConnections()
			if got := res.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != "max-age=60" {
				t.Errorf("%s: Strict-Transport-Security %q, want lb's alone: [max-age=60]", res.Proto, got)
			}
		}
	})
}

// heads reads response heads up to and including the first that is not a 1xx, without
// their bodies.
func (rc *rawClient) heads() []string {
	rc.t.Helper()
	var heads []string
	var head strings.Builder
	for {
		line, err := rc.br.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("reading a response head: %v after %q", err, head.String())
		}
		head.WriteString(line)
		if line != "\r\n" {
			continue
		}
		h := head.String()
		heads = append(heads, h)
		head.Reset()
		if !strings.HasPrefix(h, "HTTP/1.1 1") || strings.HasPrefix(h, "HTTP/1.1 101") {
			return heads
		}
	}
}

// A client that sends its body too slowly, or stops reading its answer, is cut at
// limits.body_read_timeout or limits.write_timeout: its connection slot (max_conns 1 here)
// and its backend are freed.
func TestSlowClientsAreCut(t *testing.T) {
	const extra = "limits:\n  max_conns: 1\n  body_read_timeout: 500ms\n  write_timeout: 500ms\nproxy:\n  retry_body_bytes: 1024\n"
	big := strings.Repeat("x", 1<<20)
	respond := func(w *bufio.Writer, r *lbtest.Recorded) bool {
		if r.Target != "/big" {
			return lbtest.EchoResponder(w, r)
		}
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 64*len(big))
		for range 64 {
			if _, err := w.WriteString(big); err != nil {
				return false
			}
		}
		return true
	}
	tests := []struct {
		name, req string
		read      bool // whether the client reads (a slow sender) or not (a stalled reader)
	}{
		{"body slower than body_read_timeout, buffered", "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789", true},
		{"body slower than body_read_timeout, streamed", "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("y", 4096), true},
		{"chunked body slower than body_read_timeout", "POST /slow HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + strings.Repeat("y", 4096) + "\r\n", true},
		{"client that stops reading", "GET /big HTTP/1.1\r\nHost: a\r\n\r\n", false},
	}
	forEachFrontCase(t, func(t *testing.T, fc frontCase) {
		l := startRecordedLB(t, fc, respond, extra)
		for _, tt := range tests {
			rc := l.dial(t)
			if err := rc.send(tt.req); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if tt.read {
				_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				for {
					if _, err := rc.br.ReadByte(); err != nil {
						if ne, ok := err.(net.Error); ok && ne.Timeout() {
							t.Errorf("%s: connection still open after %s", tt.name, time.Since(start))
						}
						break
					}
				}
			}
			// The slot is free: with max_conns 1, a new connection is served.
			next := l.dial(t)
			_ = next.c.SetDeadline(time.Now().Add(10 * time.Second))
			if err := next.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatalf("%s: next connection: %v", tt.name, err)
			}
			if res, body, err := next.response("GET"); err != nil || res.StatusCode != 200 {
				t.Errorf("%s: next connection not served within 10s: %v %v", tt.name, err, body)
			}
			next.c.Close()
			rc.c.Close()
			lbtest.WaitFor(t, 10*time.Second, "no request in flight", func() bool {
				b, err := l.client.Backend(t.Context(), "rec")
				return err == nil && b.InFlight == 0
			})
		}
	})
}

// limits.body_read_timeout and limits.write_timeout apply from a reload on, on both paths.
func TestServeReloadBodyAndWriteTimeouts(t *testing.T) {
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast=%t", fast), func(t *testing.T) {
			rec := lbtest.StartRecorder(t, nil)
			cfg := lbConfig{dir: t.TempDir(), urls: [][2]string{{"rec", rec.URL()}}}
			if !fast {
				cfg.env = map[string]string{"LB_FAST_PATH": "off"}
			}
			l := startLB(t, cfg)
			l.waitHealthy("rec")
			cfg.extra = "limits:\n  body_read_timeout: 300ms\n  write_timeout: 300ms\n"
			if err := os.WriteFile(l.cfgPath, []byte(cfg.render()), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := l.doReload(); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", l.addrs["http"])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || res.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("a body stalled past the reloaded body_read_timeout: %v %v, want 408", res, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("cut after %s, want about 300ms", d)
			}
		})
	}
}
