package frontend

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"outrigger/internal/lbtest"
)

// The backend breaks its answer off (closes after 500 of 1000 declared bytes): the client
// sees the stream reset, never a clean END_STREAM, and the connection serves the next one.
func TestH2BackendBreaksOff(t *testing.T) {
	rec := lbtest.StartRecorder(t, func(w *bufio.Writer, r *lbtest.Recorded) bool {
		if r.Target == "/broken" {
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("b", 500))
			return false
		}
		return lbtest.EchoResponder(w, r)
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			f := startH2(t, p, rec.URL(), nil)
			raw := dialH2Client(t, f)
			raw.request(1, "GET", "/broken", true)
			s := raw.await(1)
			if s.ended || !s.reset || len(s.body) > 500 || s.status != "200" && s.status != "" {
				t.Errorf("broken answer: status %q, %d bytes, ended %v, reset %v; want a reset stream", s.status, len(s.body), s.ended, s.reset)
			}
			raw.request(3, "GET", "/ok", true)
			if s := raw.await(3); s.status != "200" || !s.ended || !strings.HasSuffix(string(s.body), "GET /ok 0") {
				t.Errorf("next stream: status %q body %q", s.status, s.body)
			}

			// The same through http.Transport: the body read fails.
			resp, err := f.rig.client.Get("https://" + f.addr + "/broken")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil || len(body) > 500 {
				t.Errorf("http.Client read %d bytes, err %v; want an error", len(body), err)
			}
		})
	}
}

// Graceful shutdown with a slow answer in flight: the client gets a GOAWAY at once, the
// answer still completes whole, a stream opened after the GOAWAY is not served, and the
// connection then closes.
func TestH2GracefulShutdown(t *testing.T) {
	b := startSlowAnswer(t, "/slow", "after")
	url, started, paths := b.url, b.started, b.paths
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			release := b.arm(t)
			f := startH2(t, p, url, nil)
			raw := dialH2Client(t, f)
			raw.request(1, "GET", "/slow", true)
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("the slow request never reached the backend")
			}
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				done <- f.l.Shutdown(ctx)
			}()
			raw.awaitGoAway(5 * time.Second)
			if raw.goAway == nil || raw.goAway.ErrCode != http2.ErrCodeNo {
				t.Fatalf("no GOAWAY NO_ERROR on shutdown (connection ended: %v)", raw.closed)
			}
			if raw.stream(1).done() {
				t.Fatalf("the slow stream ended before its answer: %+v", raw.stream(1))
			}
			raw.request(3, "GET", "/late", true)
			close(release)
			if s := raw.await(1); s.status != "200" || !s.ended || s.reset || string(s.body) != "0123456789" {
				t.Errorf("in-flight answer: status %q body %q ended %v reset %v", s.status, s.body, s.ended, s.reset)
			}
			raw.awaitClose(5 * time.Second)
			if s := raw.stream(3); s.status != "" || s.ended {
				t.Errorf("a stream opened after the GOAWAY was served: status %q", s.status)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown did not return")
			}
			if got := <-paths; got != "/slow" {
				t.Errorf("backend got %s", got)
			}
			select {
			case got := <-paths:
				t.Errorf("backend got %s after the GOAWAY", got)
			default:
			}
		})
	}
}

// CloseAfterAnswer saying true as an answer starts makes it the connection's last: a GOAWAY
// naming its stream as the last arrives while the answer is still in flight, the answer
// arrives whole, a stream opened past the GOAWAY is not served, and the connection closes.
// While it says false the connection stays open.
func TestH2CloseAfterAnswerGoAway(t *testing.T) {
	b := startSlowAnswer(t, "/last", "open")
	url, started, paths := b.url, b.started, b.paths
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			release := b.arm(t)
			var closing atomic.Bool
			f := startH2(t, p, url, func(o *Options) { o.CloseAfterAnswer = closing.Load })
			raw := dialH2Client(t, f)
			raw.request(1, "GET", "/open", true)
			if s := raw.await(1); s.status != "200" || !s.ended || string(s.body) != "open" {
				t.Fatalf("status %q body %q", s.status, s.body)
			}
			if <-paths; raw.goAway != nil {
				t.Fatal("GOAWAY while CloseAfterAnswer says false")
			}

			closing.Store(true)
			raw.request(3, "GET", "/last", true)
			<-started
			last := raw.stream(3)
			for last.status == "" && !last.done() && raw.readOne(5*time.Second) {
			}
			// The GOAWAY goes out as the last answer starts, while it is still in flight
			// (net/http sends it with the answer's head), so that a client learns before the
			// answer ends that it must open no more streams here.
			for raw.goAway == nil && !last.done() {
				if got, _ := raw.readWithin(3 * time.Second); !got {
					break
				}
			}
			if raw.goAway == nil || last.done() {
				t.Fatalf("no GOAWAY while the last answer was in flight (stream ended %v, connection ended %v)", last.done(), raw.closed)
			}
			if raw.goAway.ErrCode != http2.ErrCodeNo || raw.goAway.LastStreamID != 3 {
				t.Errorf("GOAWAY %v, last stream %d; want NO_ERROR, 3", raw.goAway.ErrCode, raw.goAway.LastStreamID)
			}
			raw.request(5, "GET", "/next", true) // past the GOAWAY's last stream
			raw.sync()                           // and the server has read it
			close(release)
			if s := raw.await(3); s.status != "200" || !s.ended || string(s.body) != "0123456789" {
				t.Errorf("last answer: status %q body %q ended %v reset %v", s.status, s.body, s.ended, s.reset)
			}
			raw.awaitClose(5 * time.Second)
			if s := raw.stream(5); s.status != "" || s.ended {
				t.Errorf("a stream opened past the GOAWAY was served: status %q", s.status)
			}
			if got := <-paths; got != "/last" {
				t.Errorf("backend got %s", got)
			}
			select {
			case got := <-paths:
				t.Errorf("backend got %s after the last answer", got)
			default:
			}
			if lv := f.l.Liveness(); lv.Served != 2 || lv.Accepted != 1 {
				t.Errorf("liveness %+v, want 2 served on 1 connection", lv)
			}
		})
	}
}

// idle_timeout ends an idle HTTP/2 connection (GOAWAY or close) about idle_timeout after
// its last stream, not before half of it.
func TestH2IdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	rec := lbtest.StartRecorder(t, nil)
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			f := startH2(t, p, rec.URL(), withSettings(func(s *Settings) { s.IdleTimeout = idle }))
			raw := dialH2Client(t, f)
			raw.request(1, "GET", "/idle", true)
			if s := raw.await(1); s.status != "200" {
				t.Fatalf("status %q", s.status)
			}
			t0 := time.Now()
			raw.awaitGoAway(idle + 3*time.Second)
			took := time.Since(t0)
			if took < idle/2 || took > idle+1500*time.Millisecond {
				t.Errorf("idle connection ended after %v, want about %v", took, idle)
			}
			if raw.goAway != nil && raw.goAway.ErrCode != http2.ErrCodeNo {
				t.Errorf("GOAWAY %v, want NO_ERROR", raw.goAway.ErrCode)
			}
			raw.awaitClose(3 * time.Second)
		})
	}
}

// A client that sends a request head and never its body is cut after body_read_timeout:
// the backend's request is aborted, the stream reset, the request counted finished, and
// the connection serves the next stream.
func TestH2BodyReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	heads := make(chan string, 4)
	bodies := make(chan error, 4)
	url := startHookBackend(t, func(c net.Conn, bw *bufio.Writer, req *http.Request) bool {
		heads <- req.URL.Path
		_, err := io.Copy(io.Discard, req.Body)
		if req.URL.Path == "/stall" {
			bodies <- err
			return false
		}
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
		return true
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			f := startH2(t, p, url, withSettings(func(s *Settings) { s.BodyReadTimeout = timeout }))
			raw := dialH2Client(t, f)
			t0 := time.Now()
			raw.request(1, "POST", "/stall", false, "content-length", "10")
			s := raw.await(1)
			took := time.Since(t0)
			if s.ended && s.status != "408" || !s.ended && !s.reset {
				t.Errorf("stalled body: status %q ended %v reset %v %v; want the stream reset (or 408)", s.status, s.ended, s.reset, s.code)
			}
			if took < timeout/2 || took > timeout+2*time.Second {
				t.Errorf("stalled body cut after %v, want about %v", took, timeout)
			}
			waitLiveness(t, f.l, func(lv Liveness) bool { return lv.Served == 1 })
			select {
			case h := <-heads: // the head reached the backend: its request must be cut short
				if h != "/stall" {
					t.Fatalf("backend got %s", h)
				}
				select {
				case err := <-bodies:
					if err == nil {
						t.Errorf("backend got a whole body")
					}
				case <-time.After(5 * time.Second):
					t.Fatal("backend's request was not aborted")
				}
			default:
			}
			raw.request(3, "GET", "/next", true)
			if s := raw.await(3); s.status != "200" || string(s.body) != "next" {
				t.Errorf("next stream: status %q body %q", s.status, s.body)
			}
			if h := <-heads; h != "/next" {
				t.Errorf("backend got %s", h)
			}
		})
	}
}

// A client that stops reading a large answer (never opens its flow-control window) is cut
// within write_timeout and a margin: its stream is reset, and the backend connection that
// was sending the answer is closed rather than drained or kept.
func TestH2WriteTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const size = 64 << 20
	sent := make(chan error, 4)
	url := startHookBackend(t, func(c net.Conn, bw *bufio.Writer, req *http.Request) bool {
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
		chunk := make([]byte, 64<<10)
		var err error
		_ = c.SetWriteDeadline(time.Now().Add(15 * time.Second))
		for n := 0; n < size && err == nil; n += len(chunk) {
			_, err = bw.Write(chunk)
		}
		if err == nil {
			err = bw.Flush()
		}
		sent <- err
		return false
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			f := startH2(t, p, url, withSettings(func(s *Settings) { s.WriteTimeout = timeout }))
			raw := dialH2Client(t, f)
			raw.request(1, "GET", "/big", true)
			s := raw.stream(1)
			for s.status == "" && !s.done() && raw.readOne(5*time.Second) {
			}
			t0 := time.Now()
			for !s.done() && raw.readOne(timeout+5*time.Second) {
			}
			took := time.Since(t0)
			if !s.reset && raw.closed == nil || s.ended {
				t.Errorf("stalled download: ended %v reset %v, connection %v; want the stream reset", s.ended, s.reset, raw.closed)
			}
			if took > timeout+2*time.Second {
				t.Errorf("stalled download cut after %v, want within %v and a margin", took, timeout)
			}
			if len(s.body) > 1<<20 {
				t.Errorf("client got %d bytes past a 64 KiB window", len(s.body))
			}
			select {
			case err := <-sent:
				if err == nil {
					t.Errorf("backend sent all %d bytes", size)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("backend connection still open %v after the cut", 5*time.Second)
			}
			waitLiveness(t, f.l, func(lv Liveness) bool { return lv.Served == 1 })
		})
	}
}

// slowAnswer is a backend whose answer to one path stops halfway until the subtest releases
// it; every other path gets a short answer. paths has every path asked, started a value once
// the slow answer is halfway.
type slowAnswer struct {
	url      string
	started  chan struct{}
	releases chan chan struct{} // each subtest's, for the backend's slow answer
	paths    chan string
}

func startSlowAnswer(t *testing.T, slowPath, other string) *slowAnswer {
	b := &slowAnswer{started: make(chan struct{}, 1), releases: make(chan chan struct{}, 1), paths: make(chan string, 16)}
	b.url = startHookBackend(t, func(c net.Conn, bw *bufio.Writer, req *http.Request) bool {
		b.paths <- req.URL.Path
		if req.URL.Path != slowPath {
			_, _ = fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(other), other)
			return true
		}
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
		_ = bw.Flush()
		rel := <-b.releases
		b.started <- struct{}{}
		select {
		case <-rel:
		case <-time.After(10 * time.Second):
		}
		_, _ = bw.WriteString("56789")
		return true
	})
	return b
}

// arm hands the backend this subtest's release (closed when the subtest ends, if it did not)
// and drops what an earlier subtest left.
func (b *slowAnswer) arm(t *testing.T) chan struct{} {
	release := make(chan struct{})
	select { // an earlier run's, if its request never reached the backend
	case <-b.releases:
	default:
	}
	b.releases <- release
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release) // a failed run's slow answer
		}
	})
	for len(b.paths) > 0 {
		<-b.paths
	}
	return release
}
