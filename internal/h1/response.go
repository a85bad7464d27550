package h1

import (
	"errors"
	"net/http"
	"strconv"
)

var (
	errStatusLine  = errors.New("h1: malformed status line")
	errFieldFold   = errors.New("h1: obs-fold header line")
	errFieldName   = errors.New("h1: malformed header field name")
	errFieldValue  = errors.New("h1: invalid byte in header field value")
	errChunkSize   = errors.New("h1: malformed chunk size")
	errChunkTooBig = errors.New("h1: chunk size too large")
	errChunkLine   = errors.New("h1: chunk size line too long")
)

// ParseStatusLine parses a status line without its line ending, "HTTP/1.1 404 Not Found"
// or "HTTP/1.0 200": version HTTP/1.0 or HTTP/1.1, one SP, a 3-digit code from 100 to 999,
// then nothing or SP and a reason phrase, which is ignored.
func ParseStatusLine(line []byte) (minor, code int, err error) {
	const prefix = "HTTP/1."
	if len(line) < len("HTTP/1.1 200") || string(line[:len(prefix)]) != prefix || line[8] != ' ' {
		return 0, 0, errStatusLine
	}
	switch line[7] {
	case '0':
		minor = 0
	case '1':
		minor = 1
	default:
		return 0, 0, errStatusLine
	}
	d := line[9:12]
	if d[0] < '1' || d[0] > '9' || !isDigit(d[1]) || !isDigit(d[2]) ||
		len(line) > 12 && line[12] != ' ' {
		return 0, 0, errStatusLine
	}
	code = int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	return minor, code, nil
}

// ParseField splits a header field line without its line ending into name and value,
// trimmed of SP and HTAB. It is an error if the line starts with SP or HTAB (obs-fold), if
// the name before the colon is empty or not a token (whitespace before the colon
// included), or if the value has a byte net/http refuses in one (a CTL other than HTAB,
// or DEL).
func ParseField(line []byte) (name, value []byte, err error) {
	if len(line) > 0 && isOWS(line[0]) {
		return nil, nil, errFieldFold
	}
	i := 0
	for i < len(line) && tcharSet[line[i]] {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ':' {
		return nil, nil, errFieldName
	}
	value = trimOWS(line[i+1:])
	for _, c := range value {
		if !valueSet[c] {
			return nil, nil, errFieldValue
		}
	}
	return line[:i], value, nil
}

// ParseContentLength parses a Content-Length value: 1 to 18 ASCII digits, nothing else.
func ParseContentLength(v []byte) (n int64, ok bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// maxChunkLine is the longest chunk-size line (without CR LF) net/http's Transport reads:
// with its CR LF the line must fit the 4 KiB read buffer.
const maxChunkLine = 4096 - 2

// ParseChunkSize parses a chunk-size line without its line ending: 1 to 15 hex digits,
// then nothing, SP and HTAB only, or ';' and chunk extensions, which are ignored (but may
// not hold a CTL other than HTAB, or DEL). Like net/http's Transport, it refuses a line
// longer than 4094 bytes.
func ParseChunkSize(line []byte) (int64, error) {
	if len(line) > maxChunkLine {
		return 0, errChunkLine
	}
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if i == 15 {
			return 0, errChunkTooBig
		}
		n = n<<4 | d
	}
	if i == 0 {
		return 0, errChunkSize
	}
	rest := line[i:]
	if len(rest) > 0 && rest[0] == ';' {
		for _, c := range rest {
			if !valueSet[c] {
				return 0, errChunkSize
			}
		}
		return n, nil
	}
	// net/http trims trailing whitespace before it strips extensions, so it refuses
	// whitespace before a ';'; so does this.
	for _, c := range rest {
		if !isOWS(c) {
			return 0, errChunkSize
		}
	}
	return n, nil
}

// AppendStatusLine appends the status line net/http's server writes for code,
// "HTTP/1.1 404 Not Found\r\n", or "HTTP/1.1 499 status code 499\r\n" for a code without
// http.StatusText. It does not allocate when dst has room.
func AppendStatusLine(dst []byte, code int) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	if text := http.StatusText(code); text != "" {
		dst = strconv.AppendInt(dst, int64(code), 10)
		dst = append(dst, ' ')
		dst = append(dst, text...)
	} else {
		dst = appendCode(dst, code)
		dst = append(dst, " status code "...)
		dst = strconv.AppendInt(dst, int64(code), 10)
	}
	return append(dst, "\r\n"...)
}

// appendCode appends code as fmt's %03d does: zero-padded to three characters, sign included.
func appendCode(dst []byte, code int) []byte {
	width := 3
	u := uint64(code)
	if code < 0 {
		dst = append(dst, '-')
		width--
		u = -u
	}
	var digits [20]byte
	s := strconv.AppendUint(digits[:0], u, 10)
	for range width - len(s) {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
