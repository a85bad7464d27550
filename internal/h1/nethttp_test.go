package h1

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"errors"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// checkReadRequest checks that http.ReadRequest reads buf, whose head r holds, the same way.
func checkReadRequest(t *testing.T, buf []byte, r *Request) {
	t.Helper()
	rd := bytes.NewReader(buf)
	br := bufio.NewReader(rd)
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("ParseRequest accepted %q; http.ReadRequest: %v", buf, err)
	}
	if consumed := len(buf) - rd.Len() - br.Buffered(); consumed != r.HeadLen {
		t.Errorf("%q: HeadLen %d, http.ReadRequest read %d bytes", buf, r.HeadLen, consumed)
	}
	checkSeen(t, buf, r, seenRequest{
		Method: req.Method, RequestURI: req.RequestURI, Proto: req.Proto, Host: req.Host,
		Header: req.Header, ContentLength: req.ContentLength, Close: req.Close,
		TransferEncoding: req.TransferEncoding,
	})
}

// seenRequest is what net/http made of a request head.
type seenRequest struct {
	Method, RequestURI, Proto, Host string
	Header                          http.Header
	ContentLength                   int64
	Close                           bool
	TransferEncoding                []string
}

// checkSeen compares r, parsed from buf, with what net/http saw.
func checkSeen(t *testing.T, buf []byte, r *Request, s seenRequest) {
	t.Helper()
	proto := "HTTP/1." + strconv.Itoa(r.Minor)
	if s.Method != string(r.Method) || s.RequestURI != string(r.Target) || s.Proto != proto ||
		s.Host != string(r.Host) {
		t.Errorf("%q: net/http saw %s %s %s, host %q; ParseRequest %s %s %s, host %q",
			buf, s.Method, s.RequestURI, s.Proto, s.Host, r.Method, r.Target, proto, r.Host)
	}
	wantLength := r.ContentLength
	if r.Chunked {
		wantLength = -1
	}
	if s.ContentLength != wantLength {
		t.Errorf("%q: net/http saw Content-Length %d; ParseRequest %d (chunked %t)", buf, s.ContentLength, r.ContentLength, r.Chunked)
	}
	if s.Close != r.Close {
		t.Errorf("%q: net/http saw Close %t; ParseRequest %t", buf, s.Close, r.Close)
	}
	if chunked := slices.Equal(s.TransferEncoding, []string{"chunked"}); chunked != r.Chunked || !chunked && len(s.TransferEncoding) > 0 {
		t.Errorf("%q: net/http saw Transfer-Encoding %q; ParseRequest chunked %t", buf, s.TransferEncoding, r.Chunked)
	}
	want := http.Header{}
	for _, f := range r.Fields {
		if f.Kind != KindHost && f.Kind != KindTransferEncoding {
			k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
			want[k] = append(want[k], string(f.Value))
		}
	}
	// net/http keeps one of several equal Content-Length fields.
	if cl := want["Content-Length"]; len(cl) > 1 {
		want["Content-Length"] = cl[:1]
	}
	// net/http adds "Cache-Control: no-cache" to "Pragma: no-cache" (RFC 7234 section 5.4).
	if p := want["Pragma"]; len(p) > 0 && p[0] == "no-cache" && want["Cache-Control"] == nil {
		want["Cache-Control"] = []string{"no-cache"}
	}
	if !maps.EqualFunc(s.Header, want, slices.Equal) {
		t.Errorf("%q: net/http saw header %q; ParseRequest %q", buf, s.Header, want)
	}
}

// checkPrefixes checks that no proper prefix of the head ParseRequest accepted is accepted.
func checkPrefixes(t *testing.T, head []byte) {
	t.Helper()
	var r Request
	for n := range len(head) {
		err := ParseRequest(head[:n], &r)
		var e *Error
		if err != ErrIncomplete && !errors.As(err, &e) {
			t.Fatalf("ParseRequest(%q), a prefix of %q: got %v, want ErrIncomplete or an *Error",
				head[:n], head, err)
		}
	}
}

// headServer is a real http.Server on in-memory connections that answers every request
// with the seenRequest it got, gob-encoded.
type headServer struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// maxServedBody is the largest body serve sends after a head.
const maxServedBody = 256<<10 + 1

// newHeadServer starts a headServer that stops when tb ends.
func newHeadServer(tb testing.TB) *headServer {
	hs := &headServer{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength <= maxServedBody {
				if n, err := io.Copy(io.Discard, r.Body); err != nil || r.ContentLength >= 0 && n != r.ContentLength {
					http.Error(w, "short body", http.StatusTeapot)
					return
				}
			}
			// gob, not JSON: it keeps values that are not UTF-8 as they are.
			_ = gob.NewEncoder(w).Encode(seenRequest{
				Method: r.Method, RequestURI: r.RequestURI, Proto: r.Proto, Host: r.Host,
				Header: r.Header, ContentLength: r.ContentLength, Close: r.Close,
				TransferEncoding: r.TransferEncoding,
			})
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(hs) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return hs
}

// Accept implements net.Listener.
func (hs *headServer) Accept() (net.Conn, error) {
	select {
	case c := <-hs.conns:
		return c, nil
	case <-hs.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (hs *headServer) Close() error {
	hs.once.Do(func() { close(hs.done) })
	return nil
}

// Addr implements net.Listener.
func (hs *headServer) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// check sends the head r holds (from buf) and its body to the server and compares what the
// server saw.
func (hs *headServer) check(t *testing.T, buf []byte, r *Request) {
	t.Helper()
	msg := slices.Clip(buf[:r.HeadLen])
	switch {
	case r.Chunked:
		msg = append(msg, "0\r\n\r\n"...)
	case r.ContentLength <= maxServedBody:
		msg = append(msg, make([]byte, r.ContentLength)...)
	}
	client, server := net.Pipe()
	defer client.Close()
	select {
	case hs.conns <- server:
	case <-hs.done:
		t.Fatal("head server closed")
	}
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = client.Write(msg) }()
	br := bufio.NewReader(client)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode == http.StatusContinue {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		t.Fatalf("%q: reading the server's response: %v", buf, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: reading the server's response: %v", buf, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ParseRequest accepted %q; http.Server answered %s: %s", buf, resp.Status, body)
	}
	if r.Form == AsteriskForm {
		return // net/http answers OPTIONS * itself, without calling the handler
	}
	var s seenRequest
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&s); err != nil {
		t.Fatalf("%q: %v in %q", buf, err, body)
	}
	checkSeen(t, buf, r, s)
}

// TestAcceptedAgainstNetHTTP checks the accepted table heads against net/http.
func TestAcceptedAgainstNetHTTP(t *testing.T) {
	hs := newHeadServer(t)
	for _, tc := range acceptedTests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.head), &r); err != nil {
				t.Fatal(err)
			}
			checkReadRequest(t, []byte(tc.head), &r)
			hs.check(t, []byte(tc.head), &r)
		})
	}
}

// TestHostBytesAgainstServer checks that net/http's server takes a Host holding any byte
// ParseRequest allows in one.
func TestHostBytesAgainstServer(t *testing.T) {
	hs := newHeadServer(t)
	for c := range 256 {
		head := append([]byte("GET / HTTP/1.1\r\nHost: a"), byte(c))
		head = append(head, "b\r\n\r\n"...)
		var r Request
		err := ParseRequest(head, &r)
		if hostSet[c] != (err == nil) {
			t.Errorf("byte %#x: hostSet %t, ParseRequest: %v", c, hostSet[c], err)
		}
		if err == nil {
			hs.check(t, head, &r)
		}
	}
}
