package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
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

func TestParseStatusLine(t *testing.T) {
	tests := []struct {
		line        string
		minor, code int
		ok          bool
	}{
		{"HTTP/1.1 200 OK", 1, 200, true},
		{"HTTP/1.0 200 OK", 0, 200, true},
		{"HTTP/1.1 404", 1, 404, true},
		{"HTTP/1.1 404 ", 1, 404, true},
		{"HTTP/1.1 100 Continue", 1, 100, true},
		{"HTTP/1.1 999 Whatever it says \x80", 1, 999, true},
		{"HTTP/1.1 301 Moved  Permanently", 1, 301, true},
		{"HTTP/1.1 099 Low", 0, 0, false},
		{"HTTP/1.1 000", 0, 0, false},
		{"HTTP/1.1 +99", 0, 0, false},
		{"HTTP/1.1 -99", 0, 0, false},
		{"HTTP/1.1 20", 0, 0, false},
		{"HTTP/1.1 2000", 0, 0, false},
		{"HTTP/1.1 200OK", 0, 0, false},
		{"HTTP/1.1 20a OK", 0, 0, false},
		{"HTTP/1.1  200 OK", 0, 0, false},
		{"HTTP/1.1\t200 OK", 0, 0, false},
		{"HTTP/1.2 200 OK", 0, 0, false},
		{"HTTP/2.0 200 OK", 0, 0, false},
		{"HTTP/1 200 OK", 0, 0, false},
		{"http/1.1 200 OK", 0, 0, false},
		{"HTTP/1.1", 0, 0, false},
		{"", 0, 0, false},
		{"ICY 200 OK", 0, 0, false},
		{" HTTP/1.1 200 OK", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			minor, code, err := ParseStatusLine([]byte(tc.line))
			if (err == nil) != tc.ok || minor != tc.minor || code != tc.code {
				t.Fatalf("ParseStatusLine(%q): got %d, %d, %v; want %d, %d, ok %t", tc.line, minor, code, err, tc.minor, tc.code, tc.ok)
			}
			if tc.ok {
				checkStatusLineNetHTTP(t, tc.line, minor, code)
			}
		})
	}
}

// checkStatusLineNetHTTP checks that net/http reads line as ParseStatusLine did.
func checkStatusLineNetHTTP(t *testing.T, line string, minor, code int) {
	t.Helper()
	resp, _, err := readResponse(line + "\r\nContent-Length: 0\r\n\r\n")
	if err != nil {
		t.Fatalf("ParseStatusLine accepted %q; http.ReadResponse: %v", line, err)
	}
	if resp.ProtoMajor != 1 || resp.ProtoMinor != minor || resp.StatusCode != code {
		t.Errorf("%q: http.ReadResponse read HTTP/%d.%d %d; ParseStatusLine 1.%d %d",
			line, resp.ProtoMajor, resp.ProtoMinor, resp.StatusCode, minor, code)
	}
}

func FuzzParseStatusLine(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK", "HTTP/1.0 404", "HTTP/1.1 099 X", "HTTP/1.1  200", "HTTP/1.1 +20"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		minor, code, err := ParseStatusLine(line)
		if err != nil || bytes.ContainsAny(line, "\r\n") {
			return
		}
		if code < 100 || code > 999 || minor < 0 || minor > 1 {
			t.Fatalf("ParseStatusLine(%q) = %d, %d", line, minor, code)
		}
		checkStatusLineNetHTTP(t, string(line), minor, code)
	})
}

func TestParseField(t *testing.T) {
	tests := []struct {
		line, name, value string
		ok                bool
	}{
		{"Content-Type: text/plain", "Content-Type", "text/plain", true},
		{"X:y", "X", "y", true},
		{"X:", "X", "", true},
		{"X: \t a \t b \t ", "X", "a \t b", true},
		{"X: é \x80\xff", "X", "é \x80\xff", true},
		{"x-y_z.!#$%&'*+^`|~: v: w", "x-y_z.!#$%&'*+^`|~", "v: w", true},
		{" X: y", "", "", false},
		{"\tX: y", "", "", false},
		{"X y", "", "", false},
		{"X : y", "", "", false},
		{"X\t: y", "", "", false},
		{": y", "", "", false},
		{"", "", "", false},
		{"X(y): z", "", "", false},
		{"Xé: z", "", "", false},
		{"X: a\rb", "", "", false},
		{"X: a\x00b", "", "", false},
		{"X: a\x7f", "", "", false},
		{"X: \x1b[31m", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			name, value, err := ParseField([]byte(tc.line))
			if (err == nil) != tc.ok || string(name) != tc.name || string(value) != tc.value {
				t.Fatalf("ParseField(%q): got %q, %q, %v; want %q, %q, ok %t", tc.line, name, value, err, tc.name, tc.value, tc.ok)
			}
			if tc.ok {
				checkFieldNetHTTP(t, tc.line, name, value)
			}
		})
	}
}

// checkFieldNetHTTP checks that net/http reads the header line as ParseField did.
func checkFieldNetHTTP(t *testing.T, line string, name, value []byte) {
	t.Helper()
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(line + "\r\n\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("ParseField accepted %q; textproto: %v", line, err)
	}
	key := textproto.CanonicalMIMEHeaderKey(string(name))
	if got := h[key]; len(h) != 1 || len(got) != 1 || got[0] != string(value) {
		t.Errorf("%q: textproto read %q; ParseField %q: %q", line, h, key, value)
	}
}

func FuzzParseField(f *testing.F) {
	for _, s := range []string{"X: y", "X : y", " X: y", "X: a\tb", "X:", ": y", "X: \x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		name, value, err := ParseField(line)
		if err != nil || bytes.ContainsAny(line, "\r\n") {
			return
		}
		checkFieldNetHTTP(t, string(line), name, value)
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

func TestParseChunkSize(t *testing.T) {
	tests := []struct {
		line string
		n    int64
		ok   bool
	}{
		{"0", 0, true},
		{"a", 10, true},
		{"Ff", 255, true},
		{"00010", 16, true},
		{"1;ext", 1, true},
		{"1;name=value;x=\"q s\"", 1, true},
		{"1; ext ", 1, true},
		{"1 ", 1, true},
		{"1\t \t", 1, true},
		{"fffffffffffffff", 1<<60 - 1, true},
		{"000000000000001", 1, true},
		{"1000000000000000", 0, false},
		{"0000000000000001", 0, false},
		{"", 0, false},
		{";ext", 0, false},
		{" 1", 0, false},
		{"1 ;ext", 0, false},
		{"1 2", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"0x1", 0, false},
		{"g", 0, false},
		{"1\r", 0, false},
		{"1;a\rb", 0, false},
		{"1;a\x00", 0, false},
		{"1;" + strings.Repeat("x", 4092), 1, true},
		{"1;" + strings.Repeat("x", 4093), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.line[:min(len(tc.line), 40)], func(t *testing.T) {
			n, err := ParseChunkSize([]byte(tc.line))
			if n != tc.n || (err == nil) != tc.ok {
				t.Fatalf("ParseChunkSize(%q): got %d, %v; want %d, ok %t", tc.line, n, err, tc.n, tc.ok)
			}
			if tc.ok && n <= 1<<16 {
				checkChunkNetHTTP(t, tc.line, n)
			}
		})
	}
}

// TestParseChunkSizeNetHTTPRefuses checks some lines that both refuse.
func TestParseChunkSizeNetHTTPRefuses(t *testing.T) {
	for _, line := range []string{"", ";ext", " 1", "1 ;ext", "1 2", "-1", "+1", "0x1", "g", "1\r", "1;a\rb",
		"10000000000000000", "1;" + strings.Repeat("x", 4093)} {
		if _, err := ParseChunkSize([]byte(line)); err == nil {
			t.Errorf("ParseChunkSize(%q) accepted it", line)
		}
		resp, body, err := readResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + line + "\r\nx\r\n0\r\n\r\n")
		if err == nil {
			t.Errorf("chunk size line %q: net/http read %s %q", line, resp.Status, body)
		}
	}
}

// checkChunkNetHTTP checks that net/http reads a chunk of n bytes after the chunk-size line.
func checkChunkNetHTTP(t *testing.T, line string, n int64) {
	t.Helper()
	data := bytes.Repeat([]byte{'x'}, int(n))
	_, body, err := readResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + line + "\r\n" + string(data) + "\r\n0\r\n\r\n")
	if err != nil {
		t.Fatalf("ParseChunkSize accepted %q; net/http: %v", line, err)
	}
	if !bytes.Equal(body, data) {
		t.Errorf("%q: net/http read %d bytes; ParseChunkSize %d", line, len(body), n)
	}
}

func FuzzParseChunkSize(f *testing.F) {
	for _, s := range []string{"0", "1a;x=y", "1 ", "1 ;x", "fffffffffffffff", ";x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		n, err := ParseChunkSize(line)
		if err != nil || bytes.IndexByte(line, '\n') >= 0 {
			return
		}
		if n < 0 || n >= 1<<60 {
			t.Fatalf("ParseChunkSize(%q) = %d", line, n)
		}
		if n <= 1<<12 {
			checkChunkNetHTTP(t, string(line), n)
		}
	})
}

// TestAppendStatusLine checks every code against net/http's own rule.
func TestAppendStatusLine(t *testing.T) {
	for code := -1000; code <= 1100; code++ {
		want := fmt.Sprintf("HTTP/1.1 %03d status code %d\r\n", code, code)
		if text := http.StatusText(code); text != "" {
			want = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
		if got := string(AppendStatusLine([]byte("x"), code)); got != "x"+want {
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
		if got := string(AppendStatusLine(nil, code)); got != line {
			t.Errorf("AppendStatusLine(%d): got %q, server wrote %q", code, got, line)
		}
		resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(line), br)), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}
