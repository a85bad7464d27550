package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// chunkedTests are chunked bodies (with what follows them) that Chunked takes, with the
// data and trailer section it finds, or refuses with reason.
var chunkedTests = []struct {
	name, body    string
	data, trailer string
	reason        string
}{
	{name: "empty", body: "0\r\n\r\nNEXT", data: ""},
	{name: "one chunk", body: "5\r\nhello\r\n0\r\n\r\nNEXT", data: "hello"},
	{name: "two chunks", body: "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", data: "abc0123456789"},
	{name: "upper and lower hex, leading zeros", body: "0000a\r\n0123456789\r\n00\r\n\r\n", data: "0123456789"},
	{name: "fifteen digits", body: "000000000000001\r\nx\r\n000000000000000\r\n\r\n", data: "x"},
	{name: "extensions", body: "1;name=value;x=\"q s\"\r\nx\r\n0;last\r\n\r\n", data: "x"},
	{name: "trailing whitespace", body: "1 \t\r\nx\r\n0 \r\n\r\n", data: "x"},
	{name: "trailer", body: "1\r\nx\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\nNEXT", data: "x", trailer: "X-Sum: 1\r\nY:\r\n\r\n"},
	{name: "data with crlf inside", body: "4\r\n\r\n\r\n\r\n0\r\n\r\n", data: "\r\n\r\n"},
	{name: "longest size line", body: "1;" + strings.Repeat("x", 4092) + "\r\nx\r\n0\r\n\r\n", data: "x"},

	{name: "sixteen digits", body: "0000000000000001\r\nx\r\n0\r\n\r\n", reason: reasonChunkSize},
	{name: "no digits", body: ";x\r\n", reason: reasonChunkSize},
	{name: "leading space", body: " 1\r\nx\r\n0\r\n\r\n", reason: reasonChunkSize},
	{name: "space before extension", body: "1 ;x\r\nx\r\n0\r\n\r\n", reason: reasonChunkSize},
	{name: "space inside the size", body: "1 2\r\n", reason: reasonChunkSize},
	{name: "plus sign", body: "+1\r\n", reason: reasonChunkSize},
	{name: "hex prefix", body: "0x1\r\n", reason: reasonChunkSize},
	{name: "bare lf after size", body: "1\nx\r\n0\r\n\r\n", reason: reasonBareLF},
	{name: "bare cr after size", body: "1\rx\r\n", reason: reasonBareCR},
	{name: "ctl in extension", body: "1;a\x00\r\nx\r\n", reason: reasonChunkSize},
	{name: "lf in extension", body: "1;a\nx\r\n", reason: reasonBareLF},
	{name: "data longer than its size", body: "1\r\nxy\r\n0\r\n\r\n", reason: reasonChunkEnd},
	{name: "bare lf after data", body: "1\r\nx\n0\r\n\r\n", reason: reasonChunkEnd},
	{name: "size line too long", body: "1;" + strings.Repeat("x", 4093) + "\r\nx\r\n0\r\n\r\n", reason: reasonChunkLine},
	{name: "obs-fold in trailer", body: "0\r\nX: a\r\n b\r\n\r\n", reason: reasonTrailer},
	{name: "space before colon in trailer", body: "0\r\nX : a\r\n\r\n", reason: reasonTrailer},
	{name: "bare lf ending the trailer", body: "0\r\nX: a\r\n\n", reason: reasonTrailer},
	{name: "bare lf after the last chunk", body: "0\r\n\n", reason: reasonTrailer},
	{name: "no colon in trailer", body: "0\r\nXY\r\n\r\n", reason: reasonTrailer},
	{name: "nul in trailer", body: "0\r\nX: \x00\r\n\r\n", reason: reasonTrailer},
	{name: "trailer too large", body: "0\r\nX: " + strings.Repeat("y", 64<<10) + "\r\n\r\n", reason: reasonTrailerTooLarge},
}

func TestChunked(t *testing.T) {
	for _, tc := range chunkedTests {
		t.Run(tc.name, func(t *testing.T) {
			data, trailer, n, err := scanChunked([]byte(tc.body), 1<<20)
			if tc.reason != "" {
				var e *Error
				if !errors.As(err, &e) || e.Reason != tc.reason || e.Status != 400 {
					t.Fatalf("got %v, want the reason %q", err, tc.reason)
				}
				checkChunkedNetHTTPRefuses(t, tc.body)
				return
			}
			wantTrailer := tc.trailer
			if wantTrailer == "" {
				wantTrailer = "\r\n" // the trailer section's end
			}
			if err != nil || string(data) != tc.data || string(trailer) != wantTrailer {
				t.Fatalf("got %q, trailer %q, %v; want %q, trailer %q", data, trailer, err, tc.data, wantTrailer)
			}
			checkChunkedNetHTTP(t, tc.body, data, n)
		})
	}
}

// scanChunked runs a Chunked over b in pieces of at most step bytes and returns the data,
// the trailer section and how many bytes the body took.
func scanChunked(b []byte, step int) (data, trailer []byte, consumed int, err error) {
	var c Chunked
	for consumed < len(b) && !c.Done() {
		trailing := c.Trailing()
		piece := b[consumed:min(len(b), consumed+step)]
		n, isData, err := c.Next(piece)
		if err != nil {
			return nil, nil, 0, err
		}
		if n == 0 || n > len(piece) {
			return nil, nil, 0, errors.New("Next took nothing, or more than it was given")
		}
		switch {
		case isData:
			data = append(data, piece[:n]...)
		case trailing:
			trailer = append(trailer, piece[:n]...)
		}
		consumed += n
	}
	if !c.Done() {
		return nil, nil, 0, io.ErrUnexpectedEOF
	}
	return data, trailer, consumed, nil
}

// readChunkedNetHTTP reads body as the chunked body of a request with net/http, and returns
// the data and the bytes left after it.
func readChunkedNetHTTP(body string) (data []byte, rest int, err error) {
	sr := strings.NewReader(body)
	br := bufio.NewReader(io.MultiReader(strings.NewReader("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), sr))
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, 0, err
	}
	data, err = io.ReadAll(req.Body)
	return data, sr.Len() + br.Buffered(), err
}

// checkChunkedNetHTTP checks that net/http reads the same data from body and stops where
// Chunked did (after consumed bytes).
func checkChunkedNetHTTP(t *testing.T, body string, data []byte, consumed int) {
	t.Helper()
	got, rest, err := readChunkedNetHTTP(body)
	if err != nil {
		t.Fatalf("Chunked took %q; net/http: %v", body, err)
	}
	if !bytes.Equal(got, data) || len(body)-rest != consumed {
		t.Errorf("%q: net/http read %q and stopped after %d bytes; Chunked %q after %d", body, got, len(body)-rest, data, consumed)
	}
}

// checkChunkedNetHTTPRefuses checks that net/http refuses body too, or reads something
// that Chunked's refusal only makes stricter: never a different body.
func checkChunkedNetHTTPRefuses(t *testing.T, body string) {
	t.Helper()
	if data, _, err := readChunkedNetHTTP(body); err == nil {
		t.Logf("%q: net/http reads %q where Chunked refuses (stricter)", body, data)
	}
}

// TestChunkedPieces checks that any split of a body into pieces gives the same result.
func TestChunkedPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range chunkedTests {
		whole, wholeTrailer, n, werr := scanChunked([]byte(tc.body), len(tc.body))
		for range 20 {
			data, trailer, m, err := scanChunked([]byte(tc.body), 1+rng.IntN(8))
			if (err == nil) != (werr == nil) || !bytes.Equal(data, whole) || !bytes.Equal(trailer, wholeTrailer) || m != n {
				t.Fatalf("%s: in pieces %q %q %d %v; whole %q %q %d %v", tc.name, data, trailer, m, err, whole, wholeTrailer, n, werr)
			}
		}
	}
}

func TestParseTrailer(t *testing.T) {
	fields, err := ParseTrailer(nil, []byte("X-Sum: 1\r\nY:  b \r\n\r\n"))
	if err != nil || len(fields) != 2 || string(fields[0].Name) != "X-Sum" || string(fields[1].Value) != "b" {
		t.Fatalf("ParseTrailer: %q, %v", fields, err)
	}
	if fields, err := ParseTrailer(nil, []byte("\r\n")); err != nil || len(fields) != 0 {
		t.Fatalf("ParseTrailer of an empty section: %q, %v", fields, err)
	}
}

func FuzzChunked(f *testing.F) {
	for _, tc := range chunkedTests {
		f.Add([]byte(tc.body), uint8(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		data, trailer, n, err := scanChunked(body, 1+int(step))
		whole, wholeTrailer, m, werr := scanChunked(body, len(body)+1)
		if (err == nil) != (werr == nil) || !bytes.Equal(data, whole) || !bytes.Equal(trailer, wholeTrailer) || m != n {
			t.Fatalf("%q: in pieces of %d %q %q %d %v; whole %q %q %d %v", body, step, data, trailer, n, err, whole, wholeTrailer, m, werr)
		}
		if err != nil {
			return
		}
		if _, err := ParseTrailer(nil, trailer); err != nil {
			t.Fatalf("%q: Chunked took the trailer %q, ParseTrailer: %v", body, trailer, err)
		}
		checkChunkedNetHTTP(t, string(body), data, n)
	})
}
