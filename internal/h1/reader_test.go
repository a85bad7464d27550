package h1

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReaderFillGrowsUpToTheLimit(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 10000) + "\r\n\r\nBODY"
	b := NewReader(iotest.OneByteReader(strings.NewReader(head)), 16)
	var r Request
	for {
		err := ParseRequest(b.Buffered(), &r)
		if err == nil {
			break
		}
		if err != ErrIncomplete {
			t.Fatal(err)
		}
		if err := b.Fill(1 << 20); err != nil {
			t.Fatalf("Fill: %v", err)
		}
	}
	if r.HeadLen != len(head)-4 {
		t.Fatalf("HeadLen %d", r.HeadLen)
	}
	b.Discard(r.HeadLen)
	rest, err := io.ReadAll(b)
	if err != nil || string(rest) != "BODY" {
		t.Fatalf("after the head: %q, %v", rest, err)
	}

	b = NewReader(strings.NewReader(head), 16)
	err = nil
	for err == nil {
		err = b.Fill(100)
	}
	if !errors.Is(err, ErrHeadTooLarge) || len(b.Buffered()) != 100 {
		t.Fatalf("Fill past the limit: %v with %d buffered", err, len(b.Buffered()))
	}
}

func TestReaderCompactsAndKeepsBytes(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789"), 100)
	b := NewReader(iotest.HalfReader(bytes.NewReader(src)), 32)
	var got []byte
	for len(got) < len(src) {
		if err := b.Fill(32); err != nil && err != io.EOF && !errors.Is(err, ErrHeadTooLarge) {
			t.Fatal(err)
		}
		buf := b.Buffered()
		take := min(len(buf), 7)
		got = append(got, buf[:take]...)
		b.Discard(take)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("bytes changed on the way")
	}
	if b.Size() != 32 {
		t.Fatalf("buffer grew to %d while compacting sufficed", b.Size())
	}
}

func TestReaderReadsLargeReadsDirectly(t *testing.T) {
	b := NewReader(strings.NewReader("abcdefgh"), 4)
	p := make([]byte, 8)
	if n, err := b.Read(p); n != 8 || err != nil {
		t.Fatalf("Read into a large buffer: %d, %v", n, err)
	}
	b.Reset(strings.NewReader("xyz"))
	if err := b.Fill(10); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(p[:2]); n != 2 || err != nil || string(p[:2]) != "xy" {
		t.Fatalf("buffered Read: %d %q %v", n, p[:2], err)
	}
}

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		buf  string
		from int
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, true},
		{"GET / HTTP/1.1\r\nHost: h\r\n\r", 0, true},
		{"GET / HTTP/1.1\r\nHost: h\r\n", 0, false},
		{"GET / HTTP/1.1\n\n", 0, true},
		{"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, false},
	} {
		if got := HeadEnd([]byte(tc.buf), tc.from); got != tc.want {
			t.Errorf("HeadEnd(%q, %d) = %t", tc.buf, tc.from, got)
		}
	}
}
