package h1

import (
	"testing"
	"time"
)

// TestZeroAllocs checks that the hot-path helpers do not allocate.
func TestZeroAllocs(t *testing.T) {
	head := []byte(browserHead)
	var r Request
	if err := ParseRequest(head, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Fields) != 8 {
		t.Fatalf("got %d fields, want 8", len(r.Fields))
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\n")
	var rs Response
	if err := ParseResponse(resp, &rs); err != nil {
		t.Fatal(err)
	}
	chunked := []byte("1f4;x=y\r\n")
	dst := make([]byte, 0, 256)
	var d DateCache
	now := time.Now()
	tests := []struct {
		name string
		f    func()
	}{
		{"ParseRequest", func() { _ = ParseRequest(head, &r) }},
		{"Classify", func() { _ = Classify([]byte("x-forwarded-for")) }},
		{"AppendStatusLine", func() { dst = AppendStatusLine(dst[:0], 1, 200) }},
		{"AppendStatusLine 499", func() { dst = AppendStatusLine(dst[:0], 1, 499) }},
		{"DateCache.Append", func() { dst = d.Append(dst[:0], now) }},
		{"ParseResponse", func() { _ = ParseResponse(resp, &rs) }},
		{"Chunked.Next", func() {
			var c Chunked
			_, _, _ = c.Next(chunked)
		}},
		{"HasToken", func() { _ = HasToken([]byte("keep-alive, close"), "close") }},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations, want 0", tc.name, n)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	head := []byte(browserHead)
	var r Request
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseRequest(head, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestMinimal(b *testing.B) {
	head := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseRequest(head, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	names := [][]byte{[]byte("Host"), []byte("User-Agent"), []byte("x-forwarded-for"), []byte("Accept-Encoding")}
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range names {
			_ = Classify(n)
		}
	}
}

func BenchmarkDateCache(b *testing.B) {
	var d DateCache
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		dst = d.Append(dst[:0], time.Now())
	}
}
