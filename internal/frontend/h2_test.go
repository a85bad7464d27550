package frontend

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// pattern returns n bytes that differ from one offset to the next.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>11)
	}
	return p
}

// do sends req through f's HTTP/2 client and returns the answer with its whole body.
func (f *h2Front) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := f.rig.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", req.Method, req.URL.Path, err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("answer over %s", resp.Proto)
	}
	return resp, body
}

func (f *h2Front) newRequest(t *testing.T, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+f.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// lastRecorded returns the recorder's last request, failing if there is none.
func lastRecorded(t *testing.T, rec *lbtest.Recorder) lbtest.Recorded {
	t.Helper()
	reqs := rec.Requests()
	if len(reqs) == 0 {
		t.Fatal("backend got no request")
	}
	return reqs[len(reqs)-1]
}

// Requests and answers of every shape pass byte for byte: GET, HEAD, POST with a known and
// with an unknown length (which reaches the backend chunked, whole), and 1 MiB each way
// (past the default flow-control windows of both directions). Served counts each request.
func TestH2Exchanges(t *testing.T) {
	big := pattern(1 << 20)
	rec := lbtest.StartRecorder(t, func(w *bufio.Writer, r *lbtest.Recorded) bool {
		if r.Target == "/download" {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(big))
			_, _ = w.Write(big)
			return true
		}
		return lbtest.EchoResponder(w, r)
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			rec.Reset()
			f := startH2(t, p, rec.URL(), nil)
			served := uint64(0)
			check := func(method, target string, sent []byte, wantLength bool) {
				t.Helper()
				served++
				waitLiveness(t, f.l, func(lv Liveness) bool { return lv.Served == served })
				got := lastRecorded(t, rec)
				if got.Method != method || got.Target != target || got.Host != "lb.test" && !strings.HasPrefix(got.Host, "127.0.0.1:") {
					t.Errorf("backend got %s %s host %q", got.Method, got.Target, got.Host)
				}
				if sha256.Sum256(got.Body) != sha256.Sum256(sent) || got.BodyErr != nil {
					t.Errorf("%s %s: backend got %d bytes (err %v), want %d", method, target, len(got.Body), got.BodyErr, len(sent))
				}
				cl := got.Header.Get("Content-Length")
				if wantLength && cl != strconv.Itoa(len(sent)) || !wantLength && cl != "" {
					t.Errorf("%s %s: backend got Content-Length %q", method, target, cl)
				}
			}

			resp, body := f.do(t, f.newRequest(t, "GET", "/get?q=1", nil))
			if resp.StatusCode != 200 || !strings.HasSuffix(string(body), " GET /get?q=1 0") {
				t.Errorf("GET: %d %q", resp.StatusCode, body)
			}
			check("GET", "/get?q=1", nil, false)

			resp, body = f.do(t, f.newRequest(t, "HEAD", "/head", nil))
			if want := int64(len("1 HEAD /head 0")); resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength < want {
				t.Errorf("HEAD: %d, Content-Length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(body))
			}
			check("HEAD", "/head", nil, false)

			small := []byte("hello, backend")
			resp, body = f.do(t, f.newRequest(t, "POST", "/post", bytes.NewReader(small)))
			if resp.StatusCode != 200 || !strings.HasSuffix(string(body), " POST /post 14") {
				t.Errorf("POST: %d %q", resp.StatusCode, body)
			}
			check("POST", "/post", small, true)

			// A body of unknown length: no content-length on the HEADERS, DATA in pieces.
			chunky := pattern(100 << 10)
			pr, pw := io.Pipe()
			go func() {
				for i := 0; i < len(chunky); i += 7 << 10 {
					if _, err := pw.Write(chunky[i:min(i+7<<10, len(chunky))]); err != nil {
						return
					}
				}
				pw.Close()
			}()
			req := f.newRequest(t, "POST", "/unknown", pr)
			req.ContentLength = -1
			resp, body = f.do(t, req)
			if resp.StatusCode != 200 || !strings.HasSuffix(string(body), fmt.Sprintf(" POST /unknown %d", len(chunky))) {
				t.Errorf("POST of unknown length: %d %q", resp.StatusCode, body)
			}
			check("POST", "/unknown", chunky, false)

			resp, body = f.do(t, f.newRequest(t, "PUT", "/upload", bytes.NewReader(big)))
			if resp.StatusCode != 200 || !strings.HasSuffix(string(body), fmt.Sprintf(" PUT /upload %d", len(big))) {
				t.Errorf("1 MiB upload: %d %q", resp.StatusCode, body)
			}
			check("PUT", "/upload", big, true)

			resp, body = f.do(t, f.newRequest(t, "GET", "/download", nil))
			if resp.StatusCode != 200 || resp.ContentLength != int64(len(big)) || sha256.Sum256(body) != sha256.Sum256(big) {
				t.Errorf("1 MiB download: %d, Content-Length %d, %d bytes, equal %v", resp.StatusCode, resp.ContentLength, len(body), bytes.Equal(body, big))
			}
			check("GET", "/download", nil, false)
			if lv := f.l.Liveness(); lv.Accepted != 1 {
				t.Errorf("%d connections, want 1", lv.Accepted)
			}
		})
	}
}

// 100 streams in parallel on one connection, at least 20 of them open at the backend at
// once: each answer is its own request's, and Served counts them all.
func TestH2ConcurrentStreams(t *testing.T) {
	const n, together = 100, 20
	var inFlight, peak atomic.Int32
	var gateOnce sync.Once
	gate := make(chan struct{})
	rec := lbtest.StartRecorder(t, func(w *bufio.Writer, r *lbtest.Recorded) bool {
		if r.Target == "/warm" {
			return lbtest.EchoResponder(w, r)
		}
		if now := inFlight.Add(1); now >= together {
			gateOnce.Do(func() { close(gate) })
		}
		for cur := inFlight.Load(); cur > peak.Load(); cur = inFlight.Load() {
			peak.CompareAndSwap(peak.Load(), cur)
		}
		select { // hold answers until enough are in flight together
		case <-gate:
		case <-time.After(3 * time.Second):
		}
		inFlight.Add(-1)
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s=%s", len(r.Target)+1+len(r.Body), r.Target, r.Body)
		return true
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			f := startH2(t, p, rec.URL(), nil)
			f.do(t, f.newRequest(t, "GET", "/warm", nil)) // one connection for all
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					body := strings.Repeat(strconv.Itoa(i), i%13+1)
					req := f.newRequest(t, "POST", fmt.Sprintf("/c/%d", i), strings.NewReader(body))
					resp, err := f.rig.client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if want := fmt.Sprintf("/c/%d=%s", i, body); err != nil || resp.StatusCode != 200 || string(got) != want || resp.ProtoMajor != 2 {
						errs <- fmt.Errorf("stream %d: %s %d %q (%v), want %q", i, resp.Proto, resp.StatusCode, got, err, want)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			waitLiveness(t, f.l, func(lv Liveness) bool { return lv.Served == n+1 })
			if lv := f.l.Liveness(); lv.Accepted != 1 {
				t.Errorf("%d connections, want 1", lv.Accepted)
			}
			if peak.Load() < together {
				t.Errorf("at most %d requests at the backend at once, want %d", peak.Load(), together)
			}
		})
	}
}

// Answer shapes: trailers of a chunked answer reach the client as HTTP/2 trailers; a 103
// passes as an interim answer (its fields, no content-length) before the final one.
func TestH2TrailersAndInterim(t *testing.T) {
	rec := lbtest.StartRecorder(t, func(w *bufio.Writer, r *lbtest.Recorded) bool {
		switch r.Target {
		case "/trailers":
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n" +
				"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc123\r\n\r\n")
		case "/early":
			_, _ = w.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		return true
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			f := startH2(t, p, rec.URL(), nil)
			resp, body := f.do(t, f.newRequest(t, "GET", "/trailers", nil))
			if resp.StatusCode != 200 || string(body) != "hello world" || resp.Trailer.Get("X-Checksum") != "abc123" {
				t.Errorf("chunked answer: %d %q, trailers %v", resp.StatusCode, body, resp.Trailer)
			}

			var interim []string
			req := f.newRequest(t, "GET", "/early", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
					interim = append(interim, fmt.Sprintf("%d %s%s", code, strings.Join(h["Link"], ","), strings.Join(h["Content-Length"], ",")))
					return nil
				},
			}))
			resp, body = f.do(t, req)
			if resp.StatusCode != 200 || string(body) != "ok" || len(interim) != 1 || interim[0] != "103 </s.css>; rel=preload" {
				t.Errorf("early hints: %d %q, interim %q", resp.StatusCode, body, interim)
			}
		})
	}
}

// Answers without a body go out as one HEADERS frame with END_STREAM and no DATA: 204
// (without content-length), 304, and HEAD, whose answer keeps its Content-Length. Every
// answer carries one Strict-Transport-Security, lb's, replacing a backend's.
func TestH2BodylessAnswers(t *testing.T) {
	rec := lbtest.StartRecorder(t, func(w *bufio.Writer, r *lbtest.Recorded) bool {
		switch r.Target {
		case "/204":
			_, _ = w.WriteString("HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n")
		case "/hsts":
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 2\r\n\r\nok")
		case "/304":
			_, _ = w.WriteString("HTTP/1.1 304 Not Modified\r\nEtag: \"v1\"\r\n\r\n")
		default:
			return lbtest.EchoResponder(w, r)
		}
		return true
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			const hsts = "max-age=63072000"
			f := startH2(t, p, rec.URL(), withSettings(func(s *Settings) { s.HSTS = hsts }))
			raw := dialH2Client(t, f)
			cases := []struct{ method, path, status string }{{"GET", "/204", "204"}, {"GET", "/304", "304"}, {"HEAD", "/head", "200"}}
			for i, c := range cases {
				id := uint32(2*i + 1)
				raw.request(id, c.method, c.path, true)
				s := raw.await(id)
				if s.status != c.status || !s.ended || s.reset || s.data != 0 || len(s.body) != 0 {
					t.Errorf("%s %s: status %q ended %v reset %v, %d DATA frames", c.method, c.path, s.status, s.ended, s.reset, s.data)
				}
				cl := s.header["content-length"]
				if sts := s.header["strict-transport-security"]; len(sts) != 1 || sts[0] != hsts {
					t.Errorf("%s %s: strict-transport-security %q, want one %q", c.method, c.path, sts, hsts)
				}
				if c.method == "HEAD" && (len(cl) != 1 || cl[0] != strconv.Itoa(len("1 HEAD /head 0"))) || c.method != "HEAD" && len(cl) != 0 {
					t.Errorf("%s %s: content-length %q", c.method, c.path, cl)
				}
			}
			if s := raw.streams[3]; s.header["etag"] == nil {
				t.Errorf("304 lost its Etag: %v", s.header)
			}
			raw.request(7, "GET", "/hsts", true)
			if s := raw.await(7); s.status != "200" || string(s.body) != "ok" || len(s.header["strict-transport-security"]) != 1 ||
				s.header["strict-transport-security"][0] != hsts {
				t.Errorf("backend's Strict-Transport-Security: status %q, %q; want lb's only", s.status, s.header["strict-transport-security"])
			}
		})
	}
}
