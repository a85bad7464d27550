package balancer_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	. "outrigger/internal/balancer"
	"slices"
	"strings"
	"testing"
	"time"
)

// rawExchange sends raw on a new connection to addr and reads one response (after any
// interim 1xx responses, which it renders in front of the body it returns).
func rawExchange(t *testing.T, addr, raw, method string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	interim := ""
	for {
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%q: read response: %v", raw, err)
		}
		if res.StatusCode >= 100 && res.StatusCode < 200 {
			interim += "interim " + normalize(t, res, "")
			continue
		}
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("%q: read body: %v", raw, err)
		}
		return res, interim + string(body)
	}
}

// normalize renders what a client can see of a response, minus what differs by design
// between two requests: the Date, and the value of a generated request id (its presence
// stays, and the backend must have seen the same id).
func normalize(t *testing.T, res *http.Response, body string) string {
	t.Helper()
	h := res.Header.Clone()
	if got, seen := h.Get("X-Request-Id"), h.Get("X-Seen-Request-Id"); seen != "" && seen != got {
		t.Errorf("response X-Request-Id %q, backend saw %q", got, seen)
	}
	if h.Get("X-Request-Id") != "" {
		h.Set("X-Request-Id", "<id>")
	}
	h.Del("Date")
	h.Del("X-Seen-Request-Id")
	var keys []string
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d close=%v length=%d te=%v\n", res.Proto, res.StatusCode, res.Close, res.ContentLength, res.TransferEncoding)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %q\n", k, h[k])
	}
	fmt.Fprintf(&b, "trailer=%v\n%s", res.Trailer, body)
	return b.String()
}

// TestFrontEndsMatch: every request reaches the backend and comes back to the client the
// same through lb's own loop as through net/http; one that h1's rules refuse is refused by
// both, with the same status and a close.
func TestFrontEndsMatch(t *testing.T) {
	be := echoBackend(t)
	std := newRig(t, frontNetHTTP, defaultConfig(), PolicyRoundRobin, be.URL)
	fast := newRig(t, frontLoop, defaultConfig(), PolicyRoundRobin, be.URL)
	long := strings.Repeat("v", 5000)
	cases := []struct{ name, method, raw string }{
		{"get", "GET", "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: public.example\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"},
		{"no user agent", "GET", "GET / HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"escaped path", "GET", "GET /a%2Fb/%7Ec;v=1 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"head", "HEAD", "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"post", "POST", "POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"},
		{"put empty", "PUT", "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{"spoofing", "GET", "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: gopher\r\nTrue-Client-IP: 6.6.6.6\r\n\r\n"},
		{"hop by hop", "GET", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\n\r\n"},
		{"client request id", "GET", "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-123\r\n\r\n"},
		{"bad request id", "GET", "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: no spaces please\r\n\r\n"},
		{"connection close", "GET", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"repeated fields", "GET", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"},
		{"odd values", "GET", "GET / HTTP/1.1\r\nHost: h\r\nX-Tab: a\tb\r\nX-Utf8: caf\xc3\xa9\r\nX-Space:   padded   \r\n\r\n"},
		{"chunked response with trailer", "GET", "GET /chunked HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n"},
		{"response until close", "GET", "GET /close HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"204", "GET", "GET /nocontent HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"304", "GET", "GET /notmodified HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"103 early hints", "GET", "GET /hints HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"connection-named field", "GET", "GET /named HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"backend error", "GET", "GET /error HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"http/1.0", "GET", "GET / HTTP/1.0\r\nHost: h\r\n\r\n"},
		{"http/1.0 keep-alive", "GET", "GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"},
		{"http/1.0 chunked answer", "GET", "GET /chunked HTTP/1.0\r\nHost: h\r\n\r\n"},
		{"chunked request", "POST", "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"expect", "POST", "POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"},
		{"long head", "GET", "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + long + "\r\n\r\n"},
		{"absolute form", "GET", "GET http://h/abs HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"semicolon query", "GET", "GET /q?a=1;b=2 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"connection upgrade token", "GET", "GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n"},
		{"large chunked request", "POST", "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("400\r\n"+strings.Repeat("c", 0x400)+"\r\n", 80) + "0\r\n\r\n"},
		{"large request", "PUT", "PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 81920\r\n\r\n" + strings.Repeat("d", 81920)},
		{"asterisk", "OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sres, sbody := rawExchange(t, std.front.Addr(), tc.raw, tc.method)
			fres, fbody := rawExchange(t, fast.front.Addr(), tc.raw, tc.method)
			want, got := normalize(t, sres, sbody), normalize(t, fres, fbody)
			if got != want {
				t.Errorf("through lb's loop:\n%s\nthrough net/http:\n%s", got, want)
			}
		})
	}
	refused := []struct{ name, raw string }{
		{"no host", "GET / HTTP/1.1\r\n\r\n"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"bad header name", "GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n"},
		{"bare lf", "GET / HTTP/1.1\nHost: h\n\n"},
		{"connect", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{"bad chunk", "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 ;x\r\nhello\r\n0\r\n\r\n"},
		{"other expectation", "POST /up HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello"},
		{"header too large", "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 70<<10) + "\r\n\r\n"},
	}
	for _, tc := range refused {
		t.Run("refused "+tc.name, func(t *testing.T) {
			sres, _ := rawExchange(t, std.front.Addr(), tc.raw, "GET")
			fres, _ := rawExchange(t, fast.front.Addr(), tc.raw, "GET")
			if sres.StatusCode != fres.StatusCode || sres.StatusCode < 400 || !sres.Close || !fres.Close {
				t.Errorf("net/http answered %d (close %t), lb's loop %d (close %t): want the same refusal and a close",
					sres.StatusCode, sres.Close, fres.StatusCode, fres.Close)
			}
		})
	}
}
