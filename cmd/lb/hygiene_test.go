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
