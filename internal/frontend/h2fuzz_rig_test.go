package frontend

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"outrigger/internal/balancer"
	"outrigger/internal/lbtest"
)

// h2Rig is lb's front end twice over one proxy and one recording backend, both on TLS with
// ALPN h2: once on lb's own HTTP/2 server, once on net/http's (NetHTTPOnly).
type h2Rig struct {
	rec    *lbtest.Recorder
	pool   *balancer.Pool
	fronts [2]framingFront // lb's own, then net/http's
}

func newH2Rig(tb testing.TB) *h2Rig {
	tb.Helper()
	r := &h2Rig{rec: lbtest.StartRecorder(tb, nil)}
	var proxy *balancer.Proxy
	r.pool, proxy = newTestProxy(tb, r.rec.URL())
	pair, roots := testCertificate(tb)
	for i, path := range []string{"lb", "nethttp"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		l := New(Options{Name: path, Listener: ln, Proxy: proxy, NetHTTPOnly: path == "nethttp", Settings: testSettings,
			TLS: &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}})
		l.Start()
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = l.Shutdown(ctx)
		})
		r.fronts[i] = framingFront{name: path, addr: ln.Addr().String(),
			tls: &tls.Config{RootCAs: roots, ServerName: "lb.test", NextProtos: []string{"h2"}}}
	}
	return r
}

// h2Answer is what the client got on one stream.
type h2Answer struct {
	status  int // the final :status, 0 for none
	body    []byte
	rst     http2.ErrCode
	rstSeen bool
	done    bool // END_STREAM or RST_STREAM came
}

// h2Transcript is what the client got on one connection.
type h2Transcript struct {
	mu      sync.Mutex
	changed chan struct{}
	answers map[uint32]*h2Answer
	goAway  *http2.ErrCode // the code of the first GOAWAY
	lastID  uint32         // its last stream: later ones were not processed
	pings   int            // PING acknowledgements
	closed  error          // the read error that ended the connection
}

func (tr *h2Transcript) answer(id uint32) *h2Answer {
	a := tr.answers[id]
	if a == nil {
		a = &h2Answer{}
		tr.answers[id] = a
	}
	return a
}

// wait waits until id's answer is done, a GOAWAY said id will not be processed (or, with an
// error, that the connection is over), or the connection ended, or d passed; false on
// timeout.
func (tr *h2Transcript) wait(id uint32, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		tr.mu.Lock()
		ok := tr.answer(id).done || tr.closed != nil || tr.goAway != nil && (id > tr.lastID || *tr.goAway != http2.ErrCodeNo)
		tr.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-tr.changed:
		case <-deadline.C:
			return false
		}
	}
}

func (tr *h2Transcript) signal() {
	select {
	case tr.changed <- struct{}{}:
	default:
	}
}

// h2FuzzClient is the fuzzing client's side of one connection: frames written under mu.
type h2FuzzClient struct {
	c   net.Conn
	mu  sync.Mutex
	fr  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
	tr  *h2Transcript
}

// dialH2 opens a TLS connection that negotiated h2, sends the preface and SETTINGS and starts
// reading frames into a transcript.
func dialH2(t *testing.T, front framingFront) (*h2FuzzClient, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(&d, "tcp", front.addr, front.tls)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		_ = tc.Close()
		return nil, fmt.Errorf("ALPN negotiated %q, not h2", p)
	}
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	hc := &h2FuzzClient{c: tc, tr: &h2Transcript{changed: make(chan struct{}, 1), answers: map[uint32]*h2Answer{}}}
	hc.fr = http2.NewFramer(tc, tc)
	hc.fr.AllowIllegalWrites = true
	hc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	hc.enc = hpack.NewEncoder(&hc.buf)
	hc.mu.Lock()
	_, err = tc.Write([]byte(http2.ClientPreface))
	if err == nil {
		err = hc.fr.WriteSettings()
	}
	hc.mu.Unlock()
	if err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("preface: %w", err)
	}
	go hc.read()
	return hc, nil
}

// read reads frames until the connection ends, noting answers; it acknowledges SETTINGS.
func (hc *h2FuzzClient) read() {
	tr := hc.tr
	for {
		f, err := hc.fr.ReadFrame()
		tr.mu.Lock()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) { // an answer's head the client's framer refused
				a := tr.answer(se.StreamID)
				a.done, a.rst, a.rstSeen = true, se.Code, true
				tr.mu.Unlock()
				tr.signal()
				continue
			}
			tr.closed = err
			tr.mu.Unlock()
			tr.signal()
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			a := tr.answer(f.StreamID)
			if st, err := strconv.Atoi(f.PseudoValue("status")); err == nil && (st >= 200 || a.status != 0) {
				if a.status == 0 {
					a.status = st
				}
			}
			a.done = a.done || f.StreamEnded()
		case *http2.DataFrame:
			a := tr.answer(f.StreamID)
			a.body = append(a.body, f.Data()...)
			a.done = a.done || f.StreamEnded()
		case *http2.RSTStreamFrame:
			a := tr.answer(f.StreamID)
			a.done, a.rst, a.rstSeen = true, f.ErrCode, true
		case *http2.PingFrame:
			if f.IsAck() {
				tr.pings++
			}
		case *http2.GoAwayFrame:
			if tr.goAway == nil {
				code := f.ErrCode
				tr.goAway, tr.lastID = &code, f.LastStreamID
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				hc.mu.Lock()
				_ = hc.fr.WriteSettingsAck()
				hc.mu.Unlock()
			}
		}
		tr.mu.Unlock()
		tr.signal()
	}
}

// block encodes fields as one header block with the connection's HPACK encoder.
func (hc *h2FuzzClient) block(fields []hpack.HeaderField) []byte {
	hc.buf.Reset()
	for _, f := range fields {
		_ = hc.enc.WriteField(f)
	}
	return append([]byte(nil), hc.buf.Bytes()...)
}

// writeHeaders writes a header block as HEADERS and CONTINUATION frames of split bytes each
// (0: one HEADERS frame).
func (hc *h2FuzzClient) writeHeaders(id uint32, fields []hpack.HeaderField, split int, end bool) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	b := hc.block(fields)
	first := b
	if split > 0 && split < len(b) {
		first = b[:split]
	}
	b = b[len(first):]
	err := hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(b) == 0})
	for err == nil && len(b) > 0 {
		n := min(split, len(b))
		err = hc.fr.WriteContinuation(id, n == len(b), b[:n])
		b = b[n:]
	}
	return err
}

func (hc *h2FuzzClient) writeData(id uint32, end bool, data []byte, pad int) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if pad > 0 {
		return hc.fr.WriteDataPadded(id, end, data, make([]byte, pad-1))
	}
	return hc.fr.WriteData(id, end, data)
}

// barrier sends a PING and waits for its acknowledgement: every frame sent before is then
// processed. false if the connection ended (or a GOAWAY came) first, or d passed (hung).
func (hc *h2FuzzClient) barrier(d time.Duration) (ok, hung bool) {
	hc.tr.mu.Lock()
	want := hc.tr.pings + 1
	hc.tr.mu.Unlock()
	hc.mu.Lock()
	err := hc.fr.WritePing(false, [8]byte{'b', 'a', 'r', 'r', 'i', 'e', 'r'})
	hc.mu.Unlock()
	if err != nil {
		return false, false
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		hc.tr.mu.Lock()
		acked, over := hc.tr.pings >= want, hc.tr.closed != nil || hc.tr.goAway != nil
		hc.tr.mu.Unlock()
		switch {
		case over:
			return false, false
		case acked:
			return true, false
		}
		select {
		case <-hc.tr.changed:
		case <-deadline.C:
			return false, true
		}
	}
}

func (hc *h2FuzzClient) writeRST(id uint32) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	return hc.fr.WriteRSTStream(id, http2.ErrCodeCancel)
}

// awaitIdle waits until lb has no request in flight to the backend.
func (r *h2Rig) awaitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.pool.Get("rec")
		if err == nil && st.InFlight == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests still in flight to the backend after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
