package frontend

import (
	"fmt"
	"io"
	"net"
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

func (c *chunkConn) SetReadDeadline(time.Time) error { return nil }

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

// The gate passes what h1 accepts, whole requests at every position, and replaces the first
// head h1 refuses by a request line net/http answers 400, then ends.
func TestGateFraming(t *testing.T) {
	chunked := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n0\r\nTrailer: v\r\n\r\n"
	withCL := "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nxx"
	get := "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
	http10 := "GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
	upgrade := "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	clte := "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	refused := func(reason string) string { return "refused-" + reason + "\r\n\r\n" }
	tests := []struct {
		name, in   string
		wantOut    string
		wantReason string
	}{
		{"get", get, get, ""},
		{"chunked then get", chunked + get, chunked + get, ""},
		{"body with blank line then get", withCL + get, withCL + get, ""},
		{"pipelined then CL+TE", get + chunked + clte + get, get + chunked + refused("content-length-with-transfer-encoding"), "content-length-with-transfer-encoding"},
		{"CL+TE after HTTP/1.0 keep-alive", http10 + clte, http10 + refused("content-length-with-transfer-encoding"), "content-length-with-transfer-encoding"},
		{"CL+TE after an upgrade not switched", upgrade + clte, upgrade + refused("content-length-with-transfer-encoding"), "content-length-with-transfer-encoding"},
		{"TE before CL", "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n", refused("content-length-with-transfer-encoding"), "content-length-with-transfer-encoding"},
		{"differing CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", refused("differing-content-length"), "differing-content-length"},
		{"CL list in one line", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nab", refused("bad-content-length"), "bad-content-length"},
		{"same CL twice", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab" + get, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab" + get, ""},
		{"folded empty CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n\r\nhello", refused("bad-content-length"), "bad-content-length"},
		{"bare LF head", "GET / HTTP/1.1\nHost: x\n\n" + get, refused("bare-lf"), "bare-lf"},
		{"HTTP/1.0 with TE", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + get, refused("transfer-encoding-in-http1.0"), "transfer-encoding-in-http1.0"},
		{"16-digit chunk size", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\n",
			"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000", "bad-chunk-size"},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 3, 7, 4096} {
			for _, size := range []int{0, 1, 5, 1024, 4096} {
				for _, eofWithData := range []bool{false, true} {
					var reason string
					conn := &chunkConn{data: []byte(tt.in), step: step, eofWithData: eofWithData}
					g := newGate(conn, nil, time.Time{}, 1<<20, func(r string, _ int) { reason = r })
					out, err := readAllIn(g, size)
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

// After a switch of protocols every byte passes, whatever it looks like. (Bytes a client
// sends after its Upgrade request but before the 101 are framed as HTTP: a client waits
// for the 101, as RFC 6455 and RFC 9113's h2c require.)
func TestGatePassesAfterSwitch(t *testing.T) {
	upgrade := "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	frames := "\x81\x05hello\x00\x01Content-Length: 1\r\nTransfer-Encoding: x\r\n\r\n"
	conn := &chunkConn{data: []byte(upgrade + frames), step: len(upgrade)} // the frames come after the 101
	g := newGate(conn, nil, time.Time{}, 1<<20, nil)
	head := make([]byte, len(upgrade))
	if _, err := io.ReadFull(g, head); err != nil || string(head) != upgrade {
		t.Fatalf("head: %q %v", head, err)
	}
	g.passThrough()
	rest, err := io.ReadAll(g)
	if err != nil || string(rest) != frames {
		t.Fatalf("after the switch: %q %v, want %q", rest, err, frames)
	}
}

// A head longer than maxHead, complete or not, is replaced by an endless header line
// (net/http then answers 431); one of maxHead bytes passes.
func TestGateLongHead(t *testing.T) {
	get := "GET / HTTP/1.1\r\nHost: x\r\nX: "
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
			g := newGate(&chunkConn{data: []byte(tt.in), step: step}, nil, time.Time{}, 100, func(r string, s int) { reason, status = r, s })
			out := make([]byte, len(tooLargeHead)+1000)
			n, err := io.ReadFull(g, out)
			out = out[:n]
			if !tt.refused {
				if string(out) != tt.in || err != io.ErrUnexpectedEOF || reason != "" {
					t.Errorf("%s/%d: got %q, %v, reason %q; want the input unchanged", tt.name, step, out, err, reason)
				}
				continue
			}
			want := tooLargeHead + strings.Repeat("x", 1000)
			if err != nil || string(out) != want || reason != reasonHeadTooLarge || status != 431 {
				t.Errorf("%s/%d: got %q, %v, reason %q %d; want the endless header line, %s 431",
					tt.name, step, out, err, reason, status, reasonHeadTooLarge)
			}
		}
	}
}

// An expectation other than 100-continue becomes one net/http answers 417.
func TestGateExpectation(t *testing.T) {
	g := newGate(&chunkConn{data: []byte("POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx"), step: 4096},
		nil, time.Time{}, 1<<20, nil)
	out, err := io.ReadAll(g)
	if err != nil || string(out) != expectationHead {
		t.Fatalf("got %q %v, want %q", out, err, expectationHead)
	}
}

// A keep-alive stream of small requests passes at what cost.
func BenchmarkGate(b *testing.B) {
	stream := strings.Repeat("GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"+
		"POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 64\r\n\r\n"+strings.Repeat("x", 64)+
		"POST /ch HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n", 100)
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		g := newGate(&chunkConn{data: []byte(stream), step: 4096}, nil, time.Time{}, 1<<16, nil)
		for {
			if _, err := g.Read(buf); err == io.EOF {
				break
			}
		}
	}
}
