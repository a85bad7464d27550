package h1

import (
	"net/http"
	"strconv"
)

// Response is a parsed response head; its slices point into the buffer given to
// ParseResponse.
type Response struct {
	Minor int // 1 for HTTP/1.1, 0 for HTTP/1.0
	Code  int // 100 to 999

	ContentLength int64 // -1 without a Content-Length field
	Chunked       bool  // Transfer-Encoding: chunked

	// Close is set when the backend closes the connection after this response:
	// "Connection: close", or HTTP/1.0 without "Connection: keep-alive".
	Close bool
	// ConnectionNames is set when a Connection field names other fields (besides close,
	// keep-alive and upgrade): those are hop-by-hop too.
	ConnectionNames bool
	// Upgrade is the Upgrade field's value (the protocol a 101 switches to), nil without one.
	Upgrade []byte
	// UpgradeToken is set when a Connection field lists "upgrade".
	UpgradeToken bool

	Fields  []Field // every header field line in order
	HeadLen int     // bytes of the head including the final empty line
}

// BodyKind is how a response's body is delimited (RFC 9112 section 6.3).
type BodyKind uint8

// The ways a response body ends.
const (
	BodyNone       BodyKind = iota // no body: HEAD, 1xx, 204, 304
	BodyLength                     // Content-Length bytes
	BodyChunked                    // chunked transfer coding
	BodyUntilClose                 // until the backend closes the connection
)

// Body tells how the body after the head is delimited, for a response to a request with
// method HEAD (head true) or another.
func (r *Response) Body(head bool) BodyKind {
	switch {
	case head || r.Code < 200 || r.Code == http.StatusNoContent || r.Code == http.StatusNotModified:
		return BodyNone
	case r.Chunked:
		return BodyChunked
	case r.ContentLength >= 0:
		return BodyLength
	}
	return BodyUntilClose
}

// ParseResponse parses the response head at the start of buf into r, reusing r.Fields'
// array, by the same line rules as ParseRequest. It returns ErrIncomplete if buf holds no
// whole head yet, and an *Error for a head the rules refuse: besides malformed lines, both
// Content-Length and Transfer-Encoding, differing Content-Length values, a Transfer-Encoding
// other than exactly one "chunked", and any Transfer-Encoding in HTTP/1.0 (where net/http
// would read the body until the connection closes). lb takes such a response as a failed
// attempt rather than guess where it ends.
func ParseResponse(buf []byte, r *Response) error {
	*r = Response{Fields: r.Fields[:0], ContentLength: -1}
	i, err := parseStatusLine(buf, r)
	if err != nil {
		return err
	}
	var (
		firstLength []byte
		teFields    int
		keepAlive   bool
	)
	for {
		var f Field
		next, end, err := nextField(buf, i, &f)
		if err != nil {
			return err
		}
		if end {
			r.HeadLen = next
			break
		}
		i = next
		switch f.Kind {
		case KindContentLength:
			if reason := contentLength(f.Value, &r.ContentLength, &firstLength); reason != "" {
				return refuse(reason)
			}
		case KindTransferEncoding:
			teFields++
			if teFields > 1 || !equalFold(f.Value, "chunked") {
				return refuse(reasonTransferEncoding)
			}
		case KindConnection:
			for v := f.Value; len(v) > 0; {
				var tok []byte
				tok, v = NextToken(v)
				switch {
				case len(tok) == 0:
				case equalFold(tok, "close"):
					r.Close = true
				case equalFold(tok, "keep-alive"):
					keepAlive = true
				case equalFold(tok, "upgrade"):
					r.UpgradeToken = true
				default:
					r.ConnectionNames = true
				}
			}
		case KindUpgrade:
			if r.Upgrade != nil {
				return refuse(reasonDupUpgrade)
			}
			r.Upgrade = f.Value
		}
		r.Fields = append(r.Fields, f)
	}
	switch {
	case teFields > 0 && firstLength != nil:
		return refuse(reasonLengthWithTE)
	case teFields > 0 && r.Minor == 0:
		return refuse(reasonTEInHTTP10)
	}
	r.Chunked = teFields > 0
	if r.Minor == 0 && !keepAlive {
		r.Close = true
	}
	return nil
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason] CR LF" at the start of buf (a
// code from 100 to 999, a reason of field value bytes) into r and returns the offset after it.
func parseStatusLine(buf []byte, r *Response) (int, error) {
	const prefix = "HTTP/1."
	n := len(buf)
	for k := 0; k < len("HTTP/1.1 200"); k++ {
		if k == n {
			return 0, ErrIncomplete
		}
		c := buf[k]
		var ok bool
		switch {
		case k < len(prefix):
			ok = c == prefix[k]
		case k == 7:
			ok = c == '0' || c == '1'
		case k == 8:
			ok = c == ' '
		case k == 9:
			ok = '1' <= c && c <= '9'
		default:
			ok = isDigit(c)
		}
		if !ok {
			return 0, refuse(reasonStatusLine)
		}
	}
	r.Minor = int(buf[7] - '0')
	r.Code = int(buf[9]-'0')*100 + int(buf[10]-'0')*10 + int(buf[11]-'0')
	i := 12
	if i < n && buf[i] == ' ' {
		i = skipValue(buf, i)
	}
	return lineEnd(buf, i, reasonStatusLine)
}

// AppendStatusLine appends the status line net/http's server writes for code to a client of
// HTTP/1.minor: "HTTP/1.1 404 Not Found\r\n", or "HTTP/1.1 499 status code 499\r\n" for a
// code without http.StatusText ("HTTP/1.0 ..." to an HTTP/1.0 client). It does not allocate
// when dst has room.
func AppendStatusLine(dst []byte, minor, code int) []byte {
	if minor == 0 {
		dst = append(dst, "HTTP/1.0 "...)
	} else {
		dst = append(dst, "HTTP/1.1 "...)
	}
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
