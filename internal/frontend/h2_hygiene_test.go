package frontend

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"outrigger/internal/lbtest"
)

// recordedFor returns what the recorder got for target.
func recordedFor(rec *lbtest.Recorder, target string) []lbtest.Recorded {
	var got []lbtest.Recorded
	for _, r := range rec.Requests() {
		if r.Target == target {
			got = append(got, r)
		}
	}
	return got
}

// Request fields as a backend gets them: several cookie fields are one Cookie, :authority
// is Host, the client's X-Forwarded-For, Forwarded and X-Real-IP (and underscore spellings)
// are dropped, X-Forwarded-For is the peer's address and X-Forwarded-Proto and -Host are
// lb's.
func TestH2RequestFields(t *testing.T) {
	rec := lbtest.StartRecorder(t, nil)
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			rec.Reset()
			f := startH2(t, p, rec.URL(), nil)
			raw := dialH2Client(t, f)
			raw.headers(1, true, ":method", "GET", ":scheme", "https", ":authority", "app.example", ":path", "/fields",
				"cookie", "a=1", "cookie", "b=2", "x-forwarded-for", "6.6.6.6", "forwarded", "for=6.6.6.6",
				"x-real-ip", "6.6.6.6", "x_real_ip", "6.6.6.6", "x_forwarded_for", "6.6.6.6", "x-custom", "kept")
			if s := raw.await(1); s.status != "200" || !s.ended {
				t.Fatalf("status %q, ended %v, reset %v", s.status, s.ended, s.reset)
			}
			got := lastRecorded(t, rec)
			if c := got.Header["Cookie"]; len(c) != 1 || c[0] != "a=1; b=2" {
				t.Errorf("backend got Cookie %q, want one \"a=1; b=2\"", c)
			}
			if got.Host != "app.example" {
				t.Errorf("backend got Host %q, want app.example", got.Host)
			}
			if xff := got.Header["X-Forwarded-For"]; len(xff) != 1 || xff[0] != "127.0.0.1" {
				t.Errorf("backend got X-Forwarded-For %q, want the peer's 127.0.0.1", xff)
			}
			for name, values := range got.Header {
				switch strings.ReplaceAll(strings.ToLower(name), "_", "-") {
				case "forwarded", "x-real-ip":
					t.Errorf("client's %s: %q reached the backend", name, values)
				case "x-forwarded-for":
					if name != "X-Forwarded-For" {
						t.Errorf("client's %s: %q reached the backend", name, values)
					}
				}
			}
			if proto, host := got.Header["X-Forwarded-Proto"], got.Header["X-Forwarded-Host"]; len(proto) != 1 || proto[0] != "https" ||
				len(host) != 1 || host[0] != "app.example" {
				t.Errorf("backend got X-Forwarded-Proto %q, X-Forwarded-Host %q; want https, app.example", proto, host)
			}
			if got.Header.Get("X-Custom") != "kept" {
				t.Errorf("an ordinary field was lost: %v", got.Header)
			}
		})
	}
}

// Malformed requests (RFC 9113 8.2.2): a connection-specific field, or te other than
// "trailers", makes the request malformed. net/http answers 400 itself (RFC 9113 allows an
// answer before the stream closes) and a RST_STREAM PROTOCOL_ERROR is the other correct
// refusal; either way the backend gets nothing and the connection serves the next stream
// (te: trailers passes).
func TestH2MalformedRequests(t *testing.T) {
	rec := lbtest.StartRecorder(t, nil)
	bad := [][2]string{{"connection", "keep-alive"}, {"keep-alive", "timeout=5"}, {"transfer-encoding", "chunked"},
		{"upgrade", "websocket"}, {"proxy-connection", "keep-alive"}, {"te", "gzip"}, {"te", "trailers, gzip"}}
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			rec.Reset()
			f := startH2(t, p, rec.URL(), nil)
			raw := dialH2Client(t, f)
			id := uint32(1)
			for _, field := range bad {
				raw.request(id, "GET", "/bad/"+field[0], true, field[0], field[1])
				s := raw.await(id)
				answered := s.status == "400" && s.ended && !s.reset
				if !answered && !(s.reset && s.code == http2.ErrCodeProtocol && s.status == "") {
					t.Errorf("%s: %s: status %q, ended %v, reset %v %v; want 400 or RST_STREAM PROTOCOL_ERROR",
						field[0], field[1], s.status, s.ended, s.reset, s.code)
				}
				id += 2
			}
			raw.request(id, "GET", "/good", true, "te", "trailers")
			if s := raw.await(id); s.status != "200" || !s.ended {
				t.Errorf("te: trailers: status %q, reset %v %v", s.status, s.reset, s.code)
			}
			for _, r := range rec.Requests() {
				if r.Target != "/good" {
					t.Errorf("backend got the malformed %s %s", r.Method, r.Target)
				}
			}
			if len(rec.Requests()) != 1 {
				t.Errorf("backend got %d requests, want the good one", len(rec.Requests()))
			}
			if raw.goAway != nil {
				t.Errorf("stream errors ended the connection: GOAWAY %v", raw.goAway.ErrCode)
			}
		})
	}
}

// A content-length that disagrees with the DATA sent (fewer bytes before END_STREAM, or
// more in one frame) resets the stream: no backend gets a complete request that lies.
func TestH2ContentLengthMismatch(t *testing.T) {
	rec := lbtest.StartRecorder(t, nil)
	cases := []struct {
		name, length string
		data         string
	}{{"short", "10", "12345"}, {"long", "5", "1234567890"}}
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			rec.Reset()
			f := startH2(t, p, rec.URL(), nil)
			raw := dialH2Client(t, f)
			for i, c := range cases {
				id := uint32(2*i + 1)
				raw.request(id, "POST", "/"+c.name, false, "content-length", c.length)
				raw.data(id, true, []byte(c.data))
				s := raw.await(id)
				if !s.reset || s.status != "" && s.status[0] != '4' {
					t.Errorf("%s: status %q, ended %v, reset %v %v: want the stream reset", c.name, s.status, s.ended, s.reset, s.code)
				}
				waitLiveness(t, f.l, func(lv Liveness) bool { return lv.Served == uint64(i+1) })
				for _, r := range recordedFor(rec, "/"+c.name) {
					if r.BodyErr == nil {
						t.Errorf("%s: backend got a complete request: Content-Length %q, body %q", c.name, r.Header.Get("Content-Length"), r.Body)
					}
				}
			}
			raw.request(5, "GET", "/after", true)
			if s := raw.await(5); s.status != "200" {
				t.Errorf("next stream: status %q, reset %v", s.status, s.reset)
			}
		})
	}
}

// The client resets a stream mid-upload (RST_STREAM CANCEL): the backend's request is cut
// short, and the connection serves the next stream.
func TestH2ClientCancelsUpload(t *testing.T) {
	heads := make(chan string, 4)
	bodies := make(chan error, 4)
	url := startHookBackend(t, func(c net.Conn, bw *bufio.Writer, req *http.Request) bool {
		heads <- req.URL.Path
		n, err := io.Copy(io.Discard, req.Body)
		if req.URL.Path == "/upload" {
			if err == nil {
				err = io.EOF // a whole body: not what this test wants
			}
			bodies <- err
			_ = n
			return false
		}
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
		return true
	})
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			f := startH2(t, p, url, nil)
			raw := dialH2Client(t, f)
			raw.request(1, "POST", "/upload", false, "content-length", "1048576")
			raw.data(1, false, pattern(16<<10))
			select {
			case h := <-heads:
				if h != "/upload" {
					t.Fatalf("backend got %s", h)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the upload's head never reached the backend")
			}
			if err := raw.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-bodies:
				if err == io.EOF {
					t.Errorf("backend got the whole upload")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("backend's request was not aborted")
			}
			waitLiveness(t, f.l, func(lv Liveness) bool { return lv.Served == 1 })

			raw.request(3, "GET", "/next", true)
			if s := raw.await(3); s.status != "200" || string(s.body) != "next" || !s.ended {
				t.Errorf("next stream: status %q body %q reset %v", s.status, s.body, s.reset)
			}
			if h := <-heads; h != "/next" {
				t.Errorf("backend got %s", h)
			}
			waitLiveness(t, f.l, func(lv Liveness) bool { return lv.Served == 2 && lv.Accepted == 1 })
		})
	}
}

// padFields returns fields of 1000-byte values (about 1 KiB each with their names) to about
// total bytes.
func padFields(total int) []string {
	var fs []string
	for i := 0; i*1024 < total; i++ {
		fs = append(fs, "x-pad-"+strings.Repeat("p", i%10+1), strings.Repeat("v", 1000))
	}
	return fs
}

// A request head over max_header_bytes is refused before any backend sees it (DESIGN:
// 431). In one HEADERS frame (10 KiB against 8 KiB; net/http allows the limit + 320 bytes
// in HPACK's count, 32 bytes a field) it is answered 431 and the connection goes on; spread
// over CONTINUATION frames far past the limit (64 KiB) it may end the connection instead
// (net/http: GOAWAY PROTOCOL_ERROR, without reading it all). A 6 KiB head passes.
func TestH2HeadTooLarge(t *testing.T) {
	rec := lbtest.StartRecorder(t, nil)
	for _, p := range h2Paths() {
		t.Run(p.name, func(t *testing.T) {
			rec.Reset()
			f := startH2(t, p, rec.URL(), withSettings(func(s *Settings) { s.MaxHeaderBytes = 8 << 10 }))
			raw := dialH2Client(t, f)
			raw.request(1, "GET", "/small", true, padFields(6<<10)...)
			if s := raw.await(1); s.status != "200" {
				t.Errorf("a 6 KiB head: status %q, reset %v %v", s.status, s.reset, s.code)
			}
			raw.request(3, "GET", "/large", true, padFields(10<<10)...)
			if s := raw.await(3); s.status != "431" || !s.ended {
				t.Errorf("a 10 KiB head: status %q, reset %v %v, closed %v; want 431", s.status, s.reset, s.code, raw.closed)
			}
			// The server may close before it read the whole block: the write fails then.
			huge := append([]string{":method", "GET", ":scheme", "https", ":authority", "lb.test", ":path", "/huge"}, padFields(64<<10)...)
			werr := raw.tryHeaders(5, true, huge...)
			s := raw.stream(5)
			for !s.done() && raw.goAway == nil && raw.readOne(5*time.Second) {
			}
			refused := s.status == "431" || s.reset && s.status == "" ||
				raw.goAway != nil && raw.goAway.ErrCode != http2.ErrCodeNo || werr != nil && s.status == ""
			if !refused {
				t.Errorf("a 64 KiB head: status %q, reset %v %v, GOAWAY %v, write %v; want 431, RST_STREAM, GOAWAY with an error or the connection cut",
					s.status, s.reset, s.code, raw.goAway != nil, werr)
			}
			for _, path := range []string{"/large", "/huge"} {
				if got := recordedFor(rec, path); len(got) != 0 {
					t.Errorf("backend got %s", path)
				}
			}
			if len(recordedFor(rec, "/small")) != 1 {
				t.Errorf("backend did not get the small head")
			}
		})
	}
}
