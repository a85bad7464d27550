package lbtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Recorded is one request as a Recorder's connection framed it.
type Recorded struct {
	Seq     int // order of arrival at the recorder, from 1
	Method  string
	Target  string // the request-target as sent (RequestURI)
	Proto   string
	Host    string
	Header  http.Header
	Body    []byte
	BodyErr error // reading the body failed (the proxy cut it)
}

// Responder writes the raw answer to r on w; the Recorder flushes w afterwards. It returns
// false to have the Recorder close the connection after the answer.
type Responder func(w *bufio.Writer, r *Recorded) (keep bool)

// Recorder is a plain-HTTP backend that records every request it receives exactly as it
// framed it (http.ReadRequest on the raw connection, body read to its end) and answers each
// with a Responder. GET /healthz is answered with 200 {"status":"ok"} and not recorded, so a
// load balancer's health checks do not show up.
type Recorder struct {
	ln      net.Listener
	respond Responder

	mu    sync.Mutex
	reqs  []Recorded
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartRecorder starts a Recorder on 127.0.0.1 that answers with respond (nil: EchoResponder).
// It stops when the test ends.
func StartRecorder(t testing.TB, respond Responder) *Recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if respond == nil {
		respond = EchoResponder
	}
	r := &Recorder{ln: ln, respond: respond, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.Close)
	return r
}

// URL is the recorder's base URL.
func (r *Recorder) URL() string { return "http://" + r.ln.Addr().String() }

// Requests returns a copy of what was recorded so far.
func (r *Recorder) Requests() []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Recorded(nil), r.reqs...)
}

// Reset forgets what was recorded.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for their goroutines.
func (r *Recorder) Close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *Recorder) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serve(c)
			r.mu.Lock()
			delete(r.conns, c)
			r.mu.Unlock()
			_ = c.Close()
		}()
	}
}

func (r *Recorder) serve(c net.Conn) {
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method == http.MethodGet && req.URL.Path == "/healthz" {
			_, _ = io.Copy(io.Discard, req.Body)
			_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
			if bw.Flush() != nil {
				return
			}
			continue
		}
		rec := Recorded{Method: req.Method, Target: req.RequestURI, Proto: req.Proto, Host: req.Host, Header: req.Header}
		rec.Body, rec.BodyErr = io.ReadAll(req.Body)
		r.mu.Lock()
		rec.Seq = len(r.reqs) + 1
		r.reqs = append(r.reqs, rec)
		r.mu.Unlock()
		if rec.BodyErr != nil {
			return
		}
		keep := r.respond(bw, &rec)
		if bw.Flush() != nil || !keep || req.Close {
			return
		}
	}
}

// EchoBody is the body EchoResponder answers r with: "SEQ METHOD TARGET BODYLEN".
func EchoBody(r *Recorded) string {
	return fmt.Sprintf("%d %s %s %d", r.Seq, r.Method, r.Target, len(r.Body))
}

// EchoResponder answers 200 with EchoBody and a Content-Length, keeping the connection.
func EchoResponder(w *bufio.Writer, r *Recorded) bool {
	body := EchoBody(r)
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", len(body))
	if r.Method != http.MethodHead {
		_, _ = w.WriteString(body)
	}
	return true
}
