package frontend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Front is a started Listener on one HTTP/2 path, with an http.Client that speaks HTTP/2
// to it and what a raw-frame client needs to dial it.
type h2Front struct {
	l     *Listener
	rig   *pathRig
	addr  string
	roots *x509.CertPool
}

// startH2 starts a proxy Listener on path p in front of the backend at backendURL; tweak,
// if set, changes its options first. The Listener is shut down when the test ends.
func startH2(t *testing.T, p servingPath, backendURL string, tweak func(*Options)) *h2Front {
	t.Helper()
	_, proxy := newTestProxy(t, backendURL)
	pair, roots := testCertificate(t)
	rig := newPathRig(t, p, proxy, pair, roots, "")
	if tweak != nil {
		tweak(&rig.opts)
	}
	l := New(rig.opts)
	l.Start()
	t.Cleanup(func() {
		rig.tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Shutdown(ctx)
	})
	return &h2Front{l: l, rig: rig, addr: l.Addr().String(), roots: roots}
}

// withSettings returns an option tweak that serves testSettings as change leaves them.
func withSettings(change func(*Settings)) func(*Options) {
	return func(o *Options) {
		set := testSettings()
		change(&set)
		o.Settings = func() Settings { return set }
	}
}

// hookBackend is a plain-HTTP backend on loopback that hands every request, its head read by
// http.ReadRequest, to serve on the raw connection; serve returns false to close it.
type hookBackend struct {
	ln    net.Listener
	serve func(c net.Conn, bw *bufio.Writer, req *http.Request) bool
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startHookBackend(t *testing.T, serve func(c net.Conn, bw *bufio.Writer, req *http.Request) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &hookBackend{ln: ln, serve: serve, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		for c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

func (b *hookBackend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			br, bw := bufio.NewReader(c), bufio.NewWriter(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil || !b.serve(c, bw, req) || bw.Flush() != nil {
					return
				}
			}
		}()
	}
}

// rawStream is what a raw HTTP/2 client saw of one stream.
type rawStream struct {
	status  string              // the final answer's :status
	interim []string            // the 1xx :status values, in order
	header  map[string][]string // the final answer's fields
	trailer map[string][]string
	body    []byte
	data    int  // DATA frames received
	ended   bool // END_STREAM received
	reset   bool // RST_STREAM received
	code    http2.ErrCode
}

func (s *rawStream) done() bool { return s.ended || s.reset }

// h2Client is an HTTP/2 client made of a Framer and an hpack encoder, for what http.Transport
// would not send or does not show. It is used from one goroutine.
type h2Client struct {
	t       *testing.T
	c       *tls.Conn
	fr      *http2.Framer
	hbuf    bytes.Buffer
	enc     *hpack.Encoder
	streams map[uint32]*rawStream
	goAway  *http2.GoAwayFrame // the first GOAWAY received (its debug data dropped)
	pings   int                // PING acks received
	closed  error              // the error that ended reading, once it did
}

// dialH2Client connects to f over TLS with ALPN h2, sends the preface and empty SETTINGS.
func dialH2Client(t *testing.T, f *h2Front) *h2Client {
	t.Helper()
	c, err := tls.Dial("tcp", f.addr, &tls.Config{RootCAs: f.roots, ServerName: "lb.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q", p)
	}
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	r := &h2Client{t: t, c: c, fr: http2.NewFramer(c, c), streams: map[uint32]*rawStream{}}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.MaxHeaderListSize = 1 << 20
	r.enc = hpack.NewEncoder(&r.hbuf)
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// headers sends a header block of name, value pairs on stream id, in CONTINUATION frames
// past 16 KiB.
func (r *h2Client) headers(id uint32, endStream bool, fields ...string) {
	r.t.Helper()
	if err := r.tryHeaders(id, endStream, fields...); err != nil {
		r.t.Fatal(err)
	}
}

// tryHeaders is headers for a block the server may refuse by closing the connection
// before it has read it all.
func (r *h2Client) tryHeaders(id uint32, endStream bool, fields ...string) error {
	r.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		if err := r.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}); err != nil {
			return err
		}
	}
	block := r.hbuf.Bytes()
	const max = 16 << 10
	first := block[:min(len(block), max)]
	block = block[len(first):]
	err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		frag := block[:min(len(block), max)]
		block = block[len(frag):]
		err = r.fr.WriteContinuation(id, len(block) == 0, frag)
	}
	return err
}

// request sends a request head for method and path on stream id, with extra fields.
func (r *h2Client) request(id uint32, method, path string, endStream bool, extra ...string) {
	r.t.Helper()
	r.headers(id, endStream, append([]string{":method", method, ":scheme", "https", ":authority", "lb.test", ":path", path}, extra...)...)
}

func (r *h2Client) data(id uint32, endStream bool, p []byte) {
	r.t.Helper()
	if err := r.fr.WriteData(id, endStream, p); err != nil {
		r.t.Fatal(err)
	}
}

func (r *h2Client) stream(id uint32) *rawStream {
	s := r.streams[id]
	if s == nil {
		s = &rawStream{}
		r.streams[id] = s
	}
	return s
}

// readOne reads and files one frame, answering SETTINGS and PING; it reports false once the
// connection ended (r.closed says how) and fails the test if nothing came within wait.
func (r *h2Client) readOne(wait time.Duration) bool {
	r.t.Helper()
	got, timedOut := r.readWithin(wait)
	if timedOut {
		r.t.Fatalf("no frame within %v", wait)
	}
	return got
}

// readWithin is readOne that reports a wait with no frame rather than failing.
func (r *h2Client) readWithin(wait time.Duration) (got, timedOut bool) {
	if r.closed != nil {
		return false, false
	}
	_ = r.c.SetReadDeadline(time.Now().Add(wait))
	f, err := r.fr.ReadFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, true
		}
		r.closed = err
		return false, false
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			_ = r.fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			_ = r.fr.WritePing(true, f.Data)
		} else {
			r.pings++
		}
	case *http2.GoAwayFrame:
		if r.goAway == nil {
			r.goAway = &http2.GoAwayFrame{LastStreamID: f.LastStreamID, ErrCode: f.ErrCode}
		}
	case *http2.RSTStreamFrame:
		s := r.stream(f.StreamID)
		s.reset, s.code = true, f.ErrCode
	case *http2.DataFrame:
		s := r.stream(f.StreamID)
		s.data++
		s.body = append(s.body, f.Data()...)
		s.ended = s.ended || f.StreamEnded()
	case *http2.MetaHeadersFrame:
		s := r.stream(f.StreamID)
		fields := map[string][]string{}
		for _, hf := range f.RegularFields() {
			fields[hf.Name] = append(fields[hf.Name], hf.Value)
		}
		switch st := f.PseudoValue("status"); {
		case st == "":
			s.trailer = fields
		case strings.HasPrefix(st, "1"):
			s.interim = append(s.interim, st)
		default:
			s.status, s.header = st, fields
		}
		s.ended = s.ended || f.StreamEnded()
	}
	return true, false
}

// await reads frames until stream id ends (END_STREAM or RST_STREAM) or the connection
// does, and returns what the stream got.
func (r *h2Client) await(id uint32) *rawStream {
	r.t.Helper()
	for !r.stream(id).done() && r.readOne(5*time.Second) {
	}
	return r.stream(id)
}

// sync sends a PING and reads frames until its ack: the server has then processed every
// frame sent before.
func (r *h2Client) sync() {
	r.t.Helper()
	want := r.pings + 1
	if err := r.fr.WritePing(false, [8]byte{'s', 'y', 'n', 'c'}); err != nil {
		r.t.Fatal(err)
	}
	for r.pings < want && r.readOne(5*time.Second) {
	}
	if r.pings < want {
		r.t.Fatalf("no PING ack (connection ended: %v)", r.closed)
	}
}

// awaitGoAway reads frames until a GOAWAY or the connection's end, within wait.
func (r *h2Client) awaitGoAway(wait time.Duration) {
	r.t.Helper()
	for r.goAway == nil && r.readOne(wait) {
	}
}

// awaitClose reads frames until the connection ends, within wait per frame.
func (r *h2Client) awaitClose(wait time.Duration) {
	r.t.Helper()
	for r.readOne(wait) {
	}
}
