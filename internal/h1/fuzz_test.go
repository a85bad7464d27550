package h1

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSeeds are heads for FuzzParseRequest besides the table tests': valid ones and the
// usual request-smuggling tricks.
var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 123456789012345678\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent_Length: 3\r\n\r\nabc",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length:3\r\n\r\nabcGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
	"GET /%41%2f%2F%c3%a9 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a;b=c?d=e HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?b;c HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?b=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET //a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\nConnection: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX:\tv\t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: Grüße ✓ \xff\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]:80\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\r",
	"GET / HTTP/1.1\r\nHost: a\r\n",
	"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: z\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nX_Forwarded_For: 5.6.7.8\r\n\r\n",
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, tc := range acceptedTests {
		f.Add([]byte(tc.head))
	}
	for _, tc := range refusedTests {
		f.Add([]byte(tc.head))
	}
	hs := newHeadServer(f)
	f.Fuzz(func(t *testing.T, buf []byte) {
		var r Request
		err := ParseRequest(buf, &r)
		var e *Error
		switch {
		case err == ErrIncomplete:
			// Every line so far was valid, so no empty line and no bare LF were seen.
			if bytes.Contains(buf, []byte("\r\n\r\n")) {
				t.Fatalf("ParseRequest(%q): ErrIncomplete, but it holds an empty line", buf)
			}
			if i := bytes.IndexByte(buf, '\n'); i == 0 || i > 0 && buf[i-1] != '\r' {
				t.Fatalf("ParseRequest(%q): ErrIncomplete, but it holds a bare LF", buf)
			}
			return
		case errors.As(err, &e):
			if e.Reason == "" || e.Status != 400 && e.Status != 417 {
				t.Fatalf("ParseRequest(%q): reason %q, status %d", buf, e.Reason, e.Status)
			}
			return
		case err != nil:
			t.Fatalf("ParseRequest(%q): unexpected error %v", buf, err)
		}
		if r.HeadLen <= 0 || r.HeadLen > len(buf) {
			t.Fatalf("ParseRequest(%q): HeadLen %d", buf, r.HeadLen)
		}
		checkLines(t, string(buf), &r)
		checkReadRequest(t, buf, &r)
		hs.check(t, buf, &r)
		checkPrefixes(t, buf[:r.HeadLen])
		// Bytes after the head do not change it.
		var r2 Request
		if err := ParseRequest(buf[:r.HeadLen], &r2); err != nil || r2.HeadLen != r.HeadLen {
			t.Fatalf("ParseRequest(%q) without what follows the head: %v, HeadLen %d", buf[:r.HeadLen], err, r2.HeadLen)
		}
	})
}
