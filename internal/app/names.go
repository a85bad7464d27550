package app

import (
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes is the longest file name kept.
const maxNameBytes = 255

// cleanName makes an uploaded file name safe to keep and to send back: its
// last path element (either slash), control characters (bidirectional ones
// too) and invalid UTF-8 removed, surrounding spaces trimmed, at most 255
// bytes cut at a character boundary. A name with nothing left is "file".
func cleanName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || isBidiControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	name = strings.TrimSpace(name)
	for len(name) > maxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		return "file"
	}
	return name
}

// isBidiControl reports whether r is one of Unicode's bidirectional control
// characters, which can make "evil\u202Efdp.exe" look like "evilexe.pdf".
func isBidiControl(r rune) bool {
	switch {
	case r == '\u061c', r == '\u200e', r == '\u200f',
		'\u202a' <= r && r <= '\u202e', '\u2066' <= r && r <= '\u2069':
		return true
	}
	return false
}

// sniffType labels the first bytes of a file: PNG, JPEG or PDF as sniffed,
// anything else application/octet-stream.
func sniffType(head []byte) string {
	t := http.DetectContentType(head)
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	switch t {
	case "image/png", "image/jpeg", "application/pdf":
		return t
	}
	return "application/octet-stream"
}

// attachment is the Content-Disposition of a download called name.
func attachment(name string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
