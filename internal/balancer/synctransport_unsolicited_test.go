package balancer

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Bytes a backend sends on a connection while it is idle in lb's pool (a wrong
// Content-Length, a body after a HEAD or 204 answer) are not a response to anything: the
// connection is not reused, so the next request never reads them as its own answer
// (net/http's "Unsolicited response received on idle HTTP channel").
func TestSyncTransportUnsolicitedBytesOnIdleConnection(t *testing.T) {
	for _, method := range []string{"GET", "HEAD", "PUT"} {
		t.Run(method, func(t *testing.T) {
			extra := make(chan struct{})
			sent := make(chan struct{})
			rb := newRawBackend(t, func(rb *rawBackend, c net.Conn, br *bufio.Reader) {
				defer c.Close()
				if rb.conns.Load() == 1 {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(c, okResponse)
					<-extra // lb holds the connection idle now
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nbogus!")
					close(sent)
				}
				rb.serveLoop(func(*http.Request) string { return okResponse })(c, br)
			})
			st := newTestSyncTransport(rb.addr, 2*time.Second)
			t.Cleanup(st.CloseIdleConnections)
			body := ""
			if method == "PUT" {
				body = "payload"
			}
			if _, _, err := roundTrip(context.Background(), st, "GET", ""); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "connection idle", func() bool { return st.idleCount() == 1 })
			close(extra)
			<-sent
			waitFor(t, 5*time.Second, "the unsolicited bytes seen on lb's side", func() bool {
				st.mu.Lock()
				defer st.mu.Unlock()
				return len(st.idle) == 1 && !st.idle[0].open()
			})
			code, got, err := roundTrip(context.Background(), st, method, body)
			want := "ok"
			if method == "HEAD" {
				want = ""
			}
			if err != nil || code != 200 || got != want {
				t.Fatalf("next request: %d %q %v, want 200 %q (the backend's own answer)", code, got, err, want)
			}
			if n := rb.conns.Load(); n != 2 {
				t.Errorf("connections: got %d, want 2 (the dirty one dropped)", n)
			}
		})
	}
}

// A 101 answer to a request that asked for no upgrade leaves the connection in another
// protocol: it never goes back to the idle pool.
func TestSyncTransportUnrequested101NotReused(t *testing.T) {
	rb := newRawBackend(t, func(rb *rawBackend, c net.Conn, br *bufio.Reader) {
		rb.serveLoop(func(*http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"
		})(c, br)
	})
	st := newTestSyncTransport(rb.addr, 2*time.Second)
	t.Cleanup(st.CloseIdleConnections)
	code, _, err := roundTrip(context.Background(), st, "GET", "")
	if err != nil || code != http.StatusSwitchingProtocols {
		t.Fatalf("got %d %v, want 101", code, err)
	}
	if n := st.idleCount(); n != 0 {
		t.Errorf("idle connections after a 101: %d, want 0", n)
	}
}

// Response headers are bounded as http.Transport bounds them (10 MiB): a backend that sends
// header bytes without end gets an error at the limit, not a buffer that grows until the
// per-try timeout.
func TestSyncTransportResponseHeaderLimit(t *testing.T) {
	rb := newRawBackend(t, func(_ *rawBackend, c net.Conn, br *bufio.Reader) {
		defer c.Close()
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = 'a'
		}
		for range (maxResponseHeaderBytes >> 16) + 16 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.Copy(io.Discard, br) // then nothing more until lb closes
	})
	st := newTestSyncTransport(rb.addr, time.Minute)
	t.Cleanup(st.CloseIdleConnections)
	done := make(chan error, 1)
	go func() {
		_, _, err := roundTrip(context.Background(), st, "GET", "")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("got a response with endless headers, want an error")
		}
		if reason := classify(err); reason != reasonReset {
			t.Errorf("classified %q (%v), want %q", reason, err, reasonReset)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no error at the header limit: the transport kept reading until the per-try timeout")
	}
}
