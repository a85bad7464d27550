package app

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "report.pdf", "report.pdf"},
		{"unix path", "/etc/passwd", "passwd"},
		{"windows path", `C:\Users\me\photo.jpg`, "photo.jpg"},
		{"mixed path", `a/b\c/d.txt`, "d.txt"},
		{"traversal", "../../x", "x"},
		{"dot dot", "..", "file"},
		{"dot", ".", "file"},
		{"empty", "", "file"},
		{"trailing slash", "dir/", "file"},
		{"control chars", "a\x00b\r\nc\td\x7f.txt", "abcd.txt"},
		{"c1 control", "a\u0085b", "ab"},
		{"line separator", "a\u2028b", "ab"},
		{"invalid utf8", "a\xffb", "ab"},
		{"bidi override", "invoice\u202Efdp.exe", "invoicefdp.exe"},
		{"bidi isolates and marks", "a\u2066b\u2069c\u200Fd\u061Ce", "abcde"},
		{"zero-width joiner kept", "👩\u200D💻.png", "👩\u200D💻.png"},
		{"spaces trimmed", "  name  ", "name"},
		{"unicode kept", "résumé 日本.txt", "résumé 日本.txt"},
		{"quotes kept", `say "hi".txt`, `say "hi".txt`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanName(tc.in); got != tc.want {
				t.Errorf("cleanName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCleanNameLength(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	got := cleanName(long)
	if len(got) > maxNameBytes {
		t.Errorf("len = %d, want <= %d", len(got), maxNameBytes)
	}
	if !utf8.ValidString(got) {
		t.Errorf("cut inside a character: %q", got)
	}
	if len(got) != 254 {
		t.Errorf("len = %d, want 254 (127 two-byte characters)", len(got))
	}
}

func TestSniffType(t *testing.T) {
	tests := []struct {
		name string
		head []byte
		want string
	}{
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "image/png"},
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), "image/jpeg"},
		{"pdf", []byte("%PDF-1.7\n"), "application/pdf"},
		{"html", []byte("<!doctype html><script>alert(1)</script>"), "application/octet-stream"},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`), "application/octet-stream"},
		{"text", []byte("hello"), "application/octet-stream"},
		{"gif", []byte("GIF89a"), "application/octet-stream"},
		{"empty", nil, "application/octet-stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sniffType(tc.head); got != tc.want {
				t.Errorf("sniffType = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAttachment(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a.txt", "attachment; filename=a.txt"},
		{"my file.txt", `attachment; filename="my file.txt"`},
		{`q"uote.txt`, `attachment; filename="q\"uote.txt"`},
		{"résumé.pdf", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"},
	}
	for _, tc := range tests {
		if got := attachment(tc.in); got != tc.want {
			t.Errorf("attachment(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"}, {32 << 20, "32 MiB"}, {5 << 30, "5 GiB"},
	}
	for _, tc := range tests {
		if got := byteSize(tc.in); got != tc.want {
			t.Errorf("byteSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestETagMatch(t *testing.T) {
	const etag = `"abc"`
	tests := []struct {
		header string
		want   bool
	}{
		{`"abc"`, true}, {`W/"abc"`, true}, {`"x", "abc"`, true}, {`*`, true}, {`"abd"`, false}, {``, false},
	}
	for _, tc := range tests {
		if got := etagMatch(tc.header, etag); got != tc.want {
			t.Errorf("etagMatch(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
