package frontend

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2 is a client that speaks HTTP/2 frames to lb's own HTTP/2 server directly.
type rawH2 struct {
	c  *tls.Conn
	fr *http2.Framer
}

// startRawH2 serves a Listener with set on lb's HTTP/2 server over a proxy to backendURL,
// and opens a raw HTTP/2 connection to it (preface and an empty SETTINGS sent).
func startRawH2(t *testing.T, backendURL string, set Settings) *rawH2 {
	t.Helper()
	_, proxy := newTestProxy(t, backendURL)
	pair, roots := testCertificate(t)
	rig := newPathRig(t, servingPath{"h2", false, true}, proxy, pair, roots, "/")
	rig.opts.Settings = func() Settings { return set }
	l := rig.start(t)
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "lb.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	r := &rawH2{c: c, fr: http2.NewFramer(c, c)}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// get opens stream id with a GET of path.
func (r *rawH2) get(t *testing.T, id uint32, path string) {
	t.Helper()
	r.headers(t, id, true, ":method", "GET", ":scheme", "https", ":authority", "lb.test", ":path", path)
}

// headers sends a header block of name, value pairs on stream id.
func (r *rawH2) headers(t *testing.T, id uint32, end bool, fields ...string) {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// answer reads frames until stream id ends or is reset, or the connection ends: "end",
// "reset CODE", or "goaway CODE" / the read error.
func (r *rawH2) answer(t *testing.T, id uint32) string {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return err.Error()
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return "goaway " + f.ErrCode.String()
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "reset " + f.ErrCode.String()
			}
		case *http2.HeadersFrame:
			if f.StreamID == id && f.StreamEnded() {
				return "end"
			}
		case *http2.DataFrame:
			if f.StreamID == id && f.StreamEnded() {
				return "end"
			}
		}
	}
}

// TestH2ClosedStreams: frames on a stream lb reset while the client was still sending it
// (here trailers after a malformed head) are discarded and the connection goes on (RFC 9113
// 5.1); a new header block on a stream that closed normally is a STREAM_CLOSED error.
func TestH2ClosedStreams(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(backend.Close)
	r := startRawH2(t, backend.URL, testSettings())
	r.headers(t, 1, false, ":method", "POST", ":scheme", "https", ":authority", "lb.test", ":path", "/", "connection", "close")
	if got := r.answer(t, 1); got != "reset PROTOCOL_ERROR" {
		t.Fatalf("malformed head: %s, want reset PROTOCOL_ERROR", got)
	}
	r.headers(t, 1, true, "x-trailer", "1")
	r.get(t, 3, "/after")
	if got := r.answer(t, 3); got != "end" {
		t.Fatalf("stream after trailers on a stream lb reset: %s, want its answer", got)
	}
	r.get(t, 3, "/again")
	// A connection error once lb has forgotten the stream; a stream error while its
	// goroutine is still ending it: both STREAM_CLOSED.
	if got := r.answer(t, 3); got != "goaway STREAM_CLOSED" && got != "reset STREAM_CLOSED" {
		t.Fatalf("a head on a stream that closed normally: %s, want STREAM_CLOSED", got)
	}
}

// TestH2StreamLimit opens more streams than lb allows at once, against a backend that holds
// every request: lb forwards SETTINGS_MAX_CONCURRENT_STREAMS of them and refuses the rest
// with REFUSED_STREAM, so that one connection cannot hold more backend requests (and
// goroutines) than that, however fast it opens and resets streams.
func TestH2StreamLimit(t *testing.T) {
	release := make(chan struct{})
	var inFlight, peak atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(backend.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	r := startRawH2(t, backend.URL, testSettings())
	const opened = h2MaxStreams + 50
	for i := range opened {
		r.get(t, uint32(2*i+1), "/hold")
	}
	refused := 0
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for refused < opened-h2MaxStreams {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d refused streams: %v", refused, err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("stream %d reset with %v, want REFUSED_STREAM", rst.StreamID, rst.ErrCode)
			}
			refused++
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < h2MaxStreams && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := inFlight.Load(); got != h2MaxStreams || peak.Load() > h2MaxStreams {
		t.Fatalf("backend holds %d requests (peak %d), want exactly %d", got, peak.Load(), h2MaxStreams)
	}
	once.Do(func() { close(release) })
	answered := 0
	for answered < h2MaxStreams {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answers: %v", answered, err)
		}
		if h, ok := f.(*http2.HeadersFrame); ok && h.StreamEnded() {
			answered++
		} else if d, ok := f.(*http2.DataFrame); ok && d.StreamEnded() {
			answered++
		}
	}
}

// TestH2ControlFlood sends PINGs without ever reading the answers: lb closes the connection
// once the answers it holds for the client pass h2ControlLimit, rather than keep them all
// (long before write_timeout and idle_timeout, a minute each here). The PINGs go out in
// batches, and the client's receive buffer is small, so that the kernel's buffers hold few
// of the answers and the test does not wait on them.
func TestH2ControlFlood(t *testing.T) {
	backend := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(backend.Close)
	set := testSettings()
	set.WriteTimeout, set.IdleTimeout = time.Minute, time.Minute
	r := startRawH2(t, backend.URL, set)
	if tc, ok := r.c.NetConn().(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	bw := bufio.NewWriterSize(r.c, 64<<10)
	fr := http2.NewFramer(bw, nil)
	_ = r.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	var data [8]byte
	var err error
	sent := 0
	for ; sent < 5_000_000 && err == nil; sent++ {
		if err = fr.WritePing(false, data); err == nil && sent%1000 == 999 {
			err = bw.Flush()
		}
	}
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%d PINGs sent and never read, and lb kept the connection (%v)", sent, err)
	}
	t.Logf("lb closed the connection after %d unread PINGs: %v", sent, err)
}
