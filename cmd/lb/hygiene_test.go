package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// chunkConn is a net.Conn that reads data in pieces of at most step bytes.
type chunkConn struct {
	net.Conn
	data        []byte
	step        int
	eofWithData bool // the last piece comes with io.EOF
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.step, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	if c.eofWithData && len(c.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// readAllIn reads r to EOF in reads of size bytes (0: io.ReadAll's growing buffer), the way
// net/http's bufio.Reader (4 KiB) and its one-byte background read call the connection.
func readAllIn(r io.Reader, size int) ([]byte, error) {
	if size == 0 {
		return io.ReadAll(r)
	}
	var out []byte
	p := make([]byte, size)
	for {
		for i := range p {
			p[i] = '#' // what a read leaves beyond n must never be taken as data
		}
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestHygieneConnFraming(t *testing.T) {
	chunked := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n0\r\nTrailer: v\r\n\r\n"
	withCL := "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nxx"
	get := "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
	bad := "POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	tests := []struct {
		name, in   string
		wantOut    string
		wantReason string
	}{
		{"get", get, get, ""},
		{"chunked then get", chunked + get, chunked + get, ""},
		{"body with blank line then get", withCL + get, withCL + get, ""},
		{"pipelined then CL+TE", get + chunked + bad + get, get + chunked + "refused:content-length-with-transfer-encoding\r\n\r\n", "content-length-with-transfer-encoding"},
		{"TE before CL", "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n", "refused:content-length-with-transfer-encoding\r\n\r\n", "content-length-with-transfer-encoding"},
		{"differing CL", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "refused:differing-content-length\r\n\r\n", "differing-content-length"},
		{"differing CL in one line", "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab", "refused:differing-content-length\r\n\r\n", "differing-content-length"},
		{"same CL twice", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab" + get, "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab" + get, ""},
		{"bare LF head", "GET / HTTP/1.1\nHost: x\n\n" + get, "GET / HTTP/1.1\nHost: x\n\n" + get, ""},
		{"upgrade passes the rest", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x00\x01Content-Length: 1\r\nTransfer-Encoding: x\r\n\r\n", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x00\x01Content-Length: 1\r\nTransfer-Encoding: x\r\n\r\n", ""},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 3, 7, 4096} {
			for _, size := range []int{0, 1, 5, 1024, 4096} {
				for _, eofWithData := range []bool{false, true} {
					var reason string
					conn := &chunkConn{data: []byte(tt.in), step: step, eofWithData: eofWithData}
					hc := newHygieneConn(conn, 1<<20, func(r string, _ int) { reason = r })
					out, err := readAllIn(hc, size)
					id := fmt.Sprintf("%s/step %d/read %d/eof with data %t", tt.name, step, size, eofWithData)
					if err != nil {
						t.Fatalf("%s: read: %v", id, err)
					}
					if string(out) != tt.wantOut {
						t.Errorf("%s: got %q, want %q", id, out, tt.wantOut)
					}
					if reason != tt.wantReason {
						t.Errorf("%s: reason %q, want %q", id, reason, tt.wantReason)
					}
				}
			}
		}
	}
}

// Requests that arrive one per read on a kept-alive connection, as clients send them, pass
// with no allocation per request (and none per connection: reads go straight to the caller).
func BenchmarkHygieneConnKeepAlive(b *testing.B) {
	reqs := []string{
		"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
		"POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
		"POST /ch HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
	}
	conn := &perReadConn{}
	hc := newHygieneConn(conn, 1<<16, nil)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		conn.next = reqs[i%len(reqs)]
		i++
		if n, err := hc.Read(buf); err != nil || n != len(conn.last) {
			b.Fatalf("read %d, %v; want %d", n, err, len(conn.last))
		}
	}
}

// A new connection (one TLS handshake per request) costs the hygieneConn and nothing else.
func BenchmarkHygieneConnNew(b *testing.B) {
	const req = "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	conn := &perReadConn{next: req}
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		hc := newHygieneConn(conn, 1<<16, nil)
		if n, err := hc.Read(buf); err != nil || n != len(req) {
			b.Fatalf("read %d, %v; want %d", n, err, len(req))
		}
	}
}

// perReadConn returns next in one read.
type perReadConn struct {
	net.Conn
	next, last string
}

func (c *perReadConn) Read(p []byte) (int, error) {
	c.last = c.next
	return copy(p, c.next), nil
}

// A head longer than maxHead, complete or not, is replaced by an endless
// header line (net/http then answers 431); one of maxHead bytes passes.
func TestHygieneConnLongHead(t *testing.T) {
	get := "GET / HTTP/1.1\r\nX: "
	tests := []struct {
		name, in string
		refused  bool
	}{
		{"complete, too long", get + strings.Repeat("a", 500) + "\r\n\r\n", true},
		{"never ends", get + strings.Repeat("a", 5000), true},
		{"exactly the limit", get + strings.Repeat("a", 100-len(get)-4) + "\r\n\r\n", false},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 64, 4096} {
			var reason string
			var status int
			hc := newHygieneConn(&chunkConn{data: []byte(tt.in), step: step}, 100, func(r string, s int) { reason, status = r, s })
			out := make([]byte, len(tooLargeHeadReplacing)+1000)
			n, err := io.ReadFull(hc, out)
			out = out[:n]
			if !tt.refused {
				if string(out) != tt.in || err != io.ErrUnexpectedEOF || reason != "" {
					t.Errorf("%s/%d: got %q, %v, reason %q; want the input unchanged", tt.name, step, out, err, reason)
				}
				continue
			}
			want := tooLargeHeadReplacing + strings.Repeat("x", 1000)
			if err != nil || string(out) != want || reason != reasonHeadTooLarge || status != 431 {
				t.Errorf("%s/%d: got %q, %v, reason %q %d; want the endless header line, %s 431",
					tt.name, step, out, err, reason, status, reasonHeadTooLarge)
			}
		}
	}
}

// rawExchange writes req on a fresh TCP connection and returns the status
// line and whether the server then closed the connection.
func rawExchange(t *testing.T, addr, req string) (status string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	return resp.Status, err == io.EOF
}

func TestServeProtocolHygiene(t *testing.T) {
	b := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "got %d bytes", n)
	})
	l := startLB(t, lbConfig{backends: []*testBackend{b},
		extra: "limits:\n  max_header_bytes: 4096\n  read_header_timeout: 300ms\n"})
	l.waitHealthy("app-1")
	addr := l.addrs["http"]

	tests := []struct {
		name, req, wantStatus string
		wantClosed            bool
	}{
		{"CL and TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request", true},
		{"differing CL", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "400 Bad Request", true},
		{"headers too large", "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 20000) + "\r\n\r\n", "431 Request Header Fields Too Large", true},
		// net/http alone lets a head this far past its MaxHeaderBytes through.
		{"headers just over the limit", "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 4100) + "\r\n\r\n", "431 Request Header Fields Too Large", true},
		{"headers under the limit", "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: " + strings.Repeat("b", 3900) + "\r\n\r\n", "200 OK", true},
		{"chunked ok", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "200 OK", true},
	}
	for _, tt := range tests {
		status, closed := rawExchange(t, addr, tt.req)
		if status != tt.wantStatus || closed != tt.wantClosed {
			t.Errorf("%s: got %q closed=%t, want %q closed=%t", tt.name, status, closed, tt.wantStatus, tt.wantClosed)
		}
	}

	// On a keep-alive connection: a good chunked request, then a smuggling attempt.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "got 3 bytes" {
		t.Errorf("first request: got %d %q, want 200 \"got 3 bytes\"", resp.StatusCode, body)
	}
	io.WriteString(c, "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 400 {
		t.Errorf("smuggling attempt on a kept-alive connection: got %d, want 400", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection not closed after the 400: %v", err)
	}

	// Headers slower than read_header_timeout: the connection is closed.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET / HTTP/1.1\r\nHost: a\r\n")
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	n, err := io.Copy(io.Discard, slow)
	if err != nil {
		t.Errorf("slow headers: got %v after %d bytes, want the server to close (EOF)", err, n)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow headers: closed after %s, want about 300ms", d)
	}
	for _, want := range []string{`"reason":"content-length-with-transfer-encoding","status":400`, `"reason":"header-too-large","status":431`} {
		if !strings.Contains(l.out.String(), want) {
			t.Errorf("refusal not logged: no %s", want)
		}
	}
}
