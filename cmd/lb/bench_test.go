package main

import (
	"io"
	"strings"
	"testing"
)

// BenchmarkHygieneConn measures the cost of checking a keep-alive stream of
// small requests (GET, a POST with Content-Length, a chunked POST).
func BenchmarkHygieneConn(b *testing.B) {
	stream := strings.Repeat("GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"+
		"POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 64\r\n\r\n"+strings.Repeat("x", 64)+
		"POST /ch HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n", 100)
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		hc := newHygieneConn(&chunkConn{data: []byte(stream), step: 4096}, 1<<16, nil)
		for {
			if _, err := hc.Read(buf); err == io.EOF {
				break
			}
		}
	}
}
