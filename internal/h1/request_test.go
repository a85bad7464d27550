package h1

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// wantField is a field a test expects; its Line is checked by checkLines.
type wantField struct {
	name, value string
	kind        Kind
}

// wantRequest is what a test expects ParseRequest to return; query "<nil>" means no '?'.
type wantRequest struct {
	method, target, path, query, host string
	origin                            string // "" : the target
	minor                             int    // 0: HTTP/1.1 (1); use http10 for HTTP/1.0
	http10                            bool
	contentLength                     int64
	hasContentLength, close, chunked  bool
	upgrade                           string
	expectContinue, connectionNames   bool
	fields                            []wantField
	headLen                           int // 0: the whole head
}

const noQuery = "<nil>"

const browserHead = "GET /static/app.js?v=3&lang=en HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Cookie: session=MTcwMDAwMDAwMHxEdi1CQkFFQ180SUFBUkFCRUFBQUl2LUNBQUVHYzNSeWFXNW5EQWNBQlhWelpYSnBaQU5wYm5RRUFnQUM=; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

func TestParseRequest(t *testing.T) {
	for _, tc := range acceptedTests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.head), &r); err != nil {
				t.Fatalf("ParseRequest(%q): %v", tc.head, err)
			}
			checkRequest(t, tc.head, &r, tc.want)
		})
	}
}

// checkRequest compares r, parsed from head, with want.
func checkRequest(t *testing.T, head string, r *Request, want wantRequest) {
	t.Helper()
	strs := []struct {
		what      string
		got, want string
	}{
		{"Method", string(r.Method), want.method},
		{"Target", string(r.Target), want.target},
		{"Path", string(r.Path), want.path},
		{"Host", string(r.Host), want.host},
	}
	for _, s := range strs {
		if s.got != s.want {
			t.Errorf("%s: got %q, want %q", s.what, s.got, s.want)
		}
	}
	switch {
	case want.query == noQuery && r.Query != nil:
		t.Errorf("Query: got %q, want nil", r.Query)
	case want.query != noQuery && (r.Query == nil || string(r.Query) != want.query):
		t.Errorf("Query: got %q (nil %t), want %q", r.Query, r.Query == nil, want.query)
	}
	if r.ContentLength != want.contentLength || r.HasContentLength != want.hasContentLength {
		t.Errorf("ContentLength, HasContentLength: got %d, %t, want %d, %t",
			r.ContentLength, r.HasContentLength, want.contentLength, want.hasContentLength)
	}
	origin := want.origin
	if origin == "" {
		origin = want.target
	}
	minor := 1
	if want.http10 {
		minor = 0
	}
	bools := []struct {
		what      string
		got, want any
	}{
		{"Close", r.Close, want.close},
		{"Chunked", r.Chunked, want.chunked},
		{"Upgrade", string(r.Upgrade), want.upgrade},
		{"ExpectContinue", r.ExpectContinue, want.expectContinue},
		{"ConnectionNames", r.ConnectionNames, want.connectionNames},
		{"Origin", string(r.Origin), origin},
		{"Minor", r.Minor, minor},
	}
	for _, b := range bools {
		if b.got != b.want {
			t.Errorf("%s: got %v, want %v", b.what, b.got, b.want)
		}
	}
	headLen := want.headLen
	if headLen == 0 {
		headLen = len(head)
	}
	if r.HeadLen != headLen {
		t.Errorf("HeadLen: got %d, want %d", r.HeadLen, headLen)
	}
	if len(r.Fields) != len(want.fields) {
		t.Fatalf("got %d fields, want %d: %q", len(r.Fields), len(want.fields), r.Fields)
	}
	for i, f := range r.Fields {
		w := want.fields[i]
		if string(f.Name) != w.name || string(f.Value) != w.value || f.Kind != w.kind {
			t.Errorf("field %d: got %q: %q (%v), want %q: %q (%v)", i, f.Name, f.Value, f.Kind, w.name, w.value, w.kind)
		}
	}
	checkLines(t, head, r)
}

// checkLines checks that the request line and the Fields' Lines make up head's head, and
// that each Line is its Name, a colon, and a value that trims to Value.
func checkLines(t *testing.T, head string, r *Request) {
	t.Helper()
	var b strings.Builder
	b.WriteString(string(r.Method) + " " + string(r.Target) + " HTTP/1." + strconv.Itoa(r.Minor) + "\r\n")
	for i, f := range r.Fields {
		line := string(f.Line)
		rest, ok := strings.CutPrefix(line, string(f.Name)+":")
		rest, ok2 := strings.CutSuffix(rest, "\r\n")
		if !ok || !ok2 || strings.Trim(rest, " \t") != string(f.Value) {
			t.Errorf("field %d: Line %q does not match Name %q and Value %q", i, line, f.Name, f.Value)
		}
		b.WriteString(line)
	}
	b.WriteString("\r\n")
	if got, want := b.String(), head[:r.HeadLen]; got != want {
		t.Errorf("request line and Lines: got %q, want %q", got, want)
	}
}

func TestParseRequestIncomplete(t *testing.T) {
	for _, tc := range acceptedTests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.head), &r); err != nil {
				t.Fatal(err)
			}
			for n := range r.HeadLen {
				if err := ParseRequest([]byte(tc.head[:n]), &r); err != ErrIncomplete {
					t.Fatalf("ParseRequest(%q): got %v, want ErrIncomplete", tc.head[:n], err)
				}
			}
		})
	}
}

// TestParseRequestEarlyRefusal checks that a partial head can already be refused.
func TestParseRequestEarlyRefusal(t *testing.T) {
	for _, head := range []string{
		"GET / HTTP/2",
		"GET /a#",
		"GET ftp:",
		"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n",
		"GET / HTTP/1.1\r\nX: y\r\n z",
		"CONNECT ",
		"\x16\x03",
	} {
		var r Request
		var e *Error
		if err := ParseRequest([]byte(head), &r); !errors.As(err, &e) {
			t.Errorf("ParseRequest(%q): got %v, want an *Error", head, err)
		}
	}
}

// TestParseRequestReuse checks that a second parse resets every field and reuses Fields.
func TestParseRequestReuse(t *testing.T) {
	var r Request
	first := "POST /a?b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\nX: 1\r\nY: 2\r\n\r\n"
	if err := ParseRequest([]byte(first), &r); err != nil {
		t.Fatal(err)
	}
	fields := &r.Fields[:1][0]
	second := "GET / HTTP/1.1\r\nHost: b\r\n\r\n"
	if err := ParseRequest([]byte(second), &r); err != nil {
		t.Fatal(err)
	}
	checkRequest(t, second, &r, wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "b",
		fields: []wantField{{"Host", "b", KindHost}}})
	if &r.Fields[0] != fields {
		t.Errorf("Fields' array was not reused")
	}
}
