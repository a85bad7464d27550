package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readResponse reads the response in s with net/http.
func readResponse(s string) (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(s)), nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// responseTests are responses ParseResponse takes (err "") or refuses (the reason), to a
// GET or, with head, a HEAD request. Each accepted one is also read by http.ReadResponse.
var responseTests = []struct {
	name, raw string
	head      bool
	code      int
	kind      BodyKind
	body      string
	close     bool
	reason    string
}{
	{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGET", code: 200, kind: BodyLength, body: "ok"},
	{name: "no reason phrase", raw: "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", code: 404, kind: BodyLength},
	{name: "reason of obs-text and spaces", raw: "HTTP/1.1 999 Whatever  it \x80says \r\nContent-Length: 0\r\n\r\n", code: 999, kind: BodyLength},
	{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n", code: 200, kind: BodyChunked, body: "abc"},
	{name: "until close", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", code: 200, kind: BodyUntilClose, body: "all of it", close: true},
	{name: "http/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", code: 200, kind: BodyLength, body: "x"},
	{name: "http/1.0 closes", raw: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", code: 200, kind: BodyLength, body: "x", close: true},
	{name: "connection close", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", code: 200, kind: BodyLength, body: "x", close: true},
	{name: "100 continue", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", code: 100, kind: BodyNone},
	{name: "103 with content-length", raw: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nContent-Length: 5\r\n\r\n", code: 103, kind: BodyNone},
	{name: "101 switching", raw: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00", code: 101, kind: BodyNone},
	{name: "204 with content-length", raw: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", code: 204, kind: BodyNone},
	{name: "204 chunked", raw: "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", code: 204, kind: BodyNone},
	{name: "304 with content-length", raw: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n", code: 304, kind: BodyNone},
	{name: "head with content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", head: true, code: 200, kind: BodyNone},
	{name: "head chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", head: true, code: 200, kind: BodyNone},
	{name: "same content-length twice", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", code: 200, kind: BodyLength, body: "x"},

	{name: "http/1.0 chunked", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", reason: reasonTEInHTTP10},
	{name: "content-length and chunked", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", reason: reasonLengthWithTE},
	{name: "differing content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", reason: reasonDifferingLength},
	{name: "gzip transfer coding", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", reason: reasonTransferEncoding},
	{name: "bare lf status line", raw: "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", reason: reasonBareLF},
	{name: "bare lf field", raw: "HTTP/1.1 200 OK\r\nContent-Length: 0\n\n", reason: reasonBareLF},
	{name: "obs-fold", raw: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", reason: reasonObsFold},
	{name: "space before colon", raw: "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", reason: reasonFieldName},
	{name: "nul in value", raw: "HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n", reason: reasonFieldValue},
	{name: "code 099", raw: "HTTP/1.1 099 Low\r\n\r\n", reason: reasonStatusLine},
	{name: "code of two digits", raw: "HTTP/1.1 20 OK\r\n\r\n", reason: reasonStatusLine},
	{name: "code run into reason", raw: "HTTP/1.1 200OK\r\n\r\n", reason: reasonStatusLine},
	{name: "two spaces", raw: "HTTP/1.1  200 OK\r\n\r\n", reason: reasonStatusLine},
	{name: "http/1.2", raw: "HTTP/1.2 200 OK\r\n\r\n", reason: reasonStatusLine},
	{name: "http/2", raw: "HTTP/2 200\r\n\r\n", reason: reasonStatusLine},
	{name: "lower case", raw: "http/1.1 200 OK\r\n\r\n", reason: reasonStatusLine},
	{name: "ctl in reason", raw: "HTTP/1.1 200 O\x01K\r\n\r\n", reason: reasonStatusLine},
}

func TestParseResponse(t *testing.T) {
	for _, tc := range responseTests {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			err := ParseResponse([]byte(tc.raw), &r)
			if tc.reason != "" {
				var e *Error
				if !errors.As(err, &e) || e.Reason != tc.reason {
					t.Fatalf("ParseResponse(%q): got %v, want the reason %q", tc.raw, err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponse(%q): %v", tc.raw, err)
			}
			if r.Code != tc.code || r.Body(tc.head) != tc.kind {
				t.Errorf("%q: code %d, body kind %d; want %d, %d", tc.raw, r.Code, r.Body(tc.head), tc.code, tc.kind)
			}
			body, closed, err := readBody(tc.raw[r.HeadLen:], &r, tc.head)
			if err != nil || body != tc.body || closed != tc.close {
				t.Errorf("%q: body %q (close %t, %v), want %q (close %t)", tc.raw, body, closed, err, tc.body, tc.close)
			}
			checkResponseNetHTTP(t, tc.raw, tc.head, &r)
			for n := range r.HeadLen {
				if err := ParseResponse([]byte(tc.raw[:n]), &r); err != ErrIncomplete {
					t.Fatalf("ParseResponse(%q), a prefix: got %v, want ErrIncomplete", tc.raw[:n], err)
				}
			}
		})
	}
}

// readBody reads the body after a response head from rest by r's framing, and reports
// whether the connection closes after it.
func readBody(rest string, r *Response, head bool) (body string, closed bool, err error) {
	switch r.Body(head) {
	case BodyNone:
		return "", r.Close, nil
	case BodyLength:
		if int64(len(rest)) < r.ContentLength {
			return "", false, io.ErrUnexpectedEOF
		}
		return rest[:r.ContentLength], r.Close, nil
	case BodyChunked:
		data, _, err := dechunk([]byte(rest))
		return string(data), r.Close, err
	}
	return rest, true, nil
}

// dechunk decodes a chunked body at the start of b with a Chunked fed one byte at a time,
// and returns the data and the trailer section.
func dechunk(b []byte) (data, trailer []byte, err error) {
	var c Chunked
	for i := 0; i < len(b) && !c.Done(); i++ {
		trailing := c.Trailing()
		n, isData, err := c.Next(b[i : i+1])
		if err != nil {
			return nil, nil, err
		}
		switch {
		case n == 0:
		case isData:
			data = append(data, b[i])
		case trailing:
			trailer = append(trailer, b[i])
		}
	}
	if !c.Done() {
		return nil, nil, io.ErrUnexpectedEOF
	}
	return data, trailer, nil
}

// checkResponseNetHTTP checks that http.ReadResponse reads raw, which ParseResponse took
// into r, with the same status, version, body and connection close.
func checkResponseNetHTTP(t *testing.T, raw string, head bool, r *Response) {
	t.Helper()
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("ParseResponse accepted %q; http.ReadResponse: %v", raw, err)
	}
	want, err := io.ReadAll(resp.Body)
	body, closed, berr := readBody(raw[r.HeadLen:], r, head)
	if (err == nil) != (berr == nil) || err == nil && body != string(want) {
		t.Errorf("%q: net/http read the body %q (%v); ParseResponse's framing %q (%v)", raw, want, err, body, berr)
	}
	if resp.StatusCode != r.Code || resp.ProtoMinor != r.Minor || resp.ProtoMajor != 1 {
		t.Errorf("%q: net/http read %s %d; ParseResponse 1.%d %d", raw, resp.Proto, resp.StatusCode, r.Minor, r.Code)
	}
	if berr == nil && resp.Close != closed {
		t.Errorf("%q: net/http read Close %t; ParseResponse %t", raw, resp.Close, closed)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, tc := range responseTests {
		f.Add([]byte(tc.raw), tc.head)
	}
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		var r Response
		err := ParseResponse(raw, &r)
		var e *Error
		switch {
		case err == ErrIncomplete, errors.As(err, &e):
			return
		case err != nil:
			t.Fatalf("ParseResponse(%q): unexpected error %v", raw, err)
		}
		if r.Code < 100 || r.Code > 999 || r.HeadLen > len(raw) {
			t.Fatalf("ParseResponse(%q): code %d, HeadLen %d", raw, r.Code, r.HeadLen)
		}
		checkResponseNetHTTP(t, string(raw), head, &r)
	})
}

func TestParseContentLength(t *testing.T) {
	tests := []struct {
		v  string
		n  int64
		ok bool
	}{
		{"0", 0, true},
		{"1", 1, true},
		{"0012", 12, true},
		{"123456789", 123456789, true},
		{"999999999999999999", 999999999999999999, true},
		{"1000000000000000000", 0, false},
		{"9223372036854775807", 0, false},
		{"", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"1,1", 0, false},
		{"1 1", 0, false},
		{"0x1", 0, false},
		{"1_0", 0, false},
		{"1.0", 0, false},
		{"١", 0, false},
	}
	for _, tc := range tests {
		n, ok := ParseContentLength([]byte(tc.v))
		if n != tc.n || ok != tc.ok {
			t.Errorf("ParseContentLength(%q): got %d, %t; want %d, %t", tc.v, n, ok, tc.n, tc.ok)
		}
		if ok {
			checkContentLengthNetHTTP(t, tc.v, n)
		}
	}
}

// checkContentLengthNetHTTP checks that net/http reads the Content-Length value v as n.
func checkContentLengthNetHTTP(t *testing.T, v string, n int64) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + v + "\r\n\r\n")))
	if err != nil {
		t.Fatalf("ParseContentLength accepted %q; http.ReadRequest: %v", v, err)
	}
	if req.ContentLength != n {
		t.Errorf("Content-Length %q: http.ReadRequest read %d; ParseContentLength %d", v, req.ContentLength, n)
	}
}

func FuzzParseContentLength(f *testing.F) {
	for _, s := range []string{"0", "12", "+1", "999999999999999999", "1 "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		n, ok := ParseContentLength(v)
		if !ok {
			return
		}
		if n < 0 {
			t.Fatalf("ParseContentLength(%q) = %d", v, n)
		}
		checkContentLengthNetHTTP(t, string(v), n)
	})
}

// TestAppendStatusLine checks every code against net/http's own rule.
func TestAppendStatusLine(t *testing.T) {
	for code := -1000; code <= 1100; code++ {
		want := fmt.Sprintf("HTTP/1.1 %03d status code %d\r\n", code, code)
		if text := http.StatusText(code); text != "" {
			want = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
		if got := string(AppendStatusLine([]byte("x"), 1, code)); got != "x"+want {
			t.Fatalf("AppendStatusLine(%d): got %q, want %q", code, got, "x"+want)
		}
	}
}

// TestAppendStatusLineServer compares with the status line a real net/http server writes.
func TestAppendStatusLineServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for _, code := range []int{200, 204, 404, 418, 499, 599, 999} {
		if _, err := fmt.Fprintf(conn, "GET /?code=%d HTTP/1.1\r\nHost: h\r\n\r\n", code); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got := string(AppendStatusLine(nil, 1, code)); got != line {
			t.Errorf("AppendStatusLine(%d): got %q, server wrote %q", code, got, line)
		}
		resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(line), br)), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}
