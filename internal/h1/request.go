package h1

import "encoding/binary"

// Field is one header field line of a request head.
type Field struct {
	Name  []byte // as sent
	Value []byte // without leading and trailing SP and HTAB
	Line  []byte // the whole line including its CR LF, to forward verbatim
	Kind  Kind
}

// Request is a parsed request head; its slices point into the buffer given to ParseRequest.
type Request struct {
	Method           []byte  // e.g. GET
	Target           []byte  // origin-form request target, e.g. /a/b?x=1
	Path             []byte  // Target before the first '?' (still percent-encoded)
	Query            []byte  // after the first '?', without it; nil if there is no '?'
	Host             []byte  // value of the single Host field
	ContentLength    int64   // 0 when there is no Content-Length field
	HasContentLength bool    // there is a Content-Length field
	Close            bool    // a Connection field lists "close"
	Fields           []Field // every header field line in order (Host included)
	HeadLen          int     // bytes of the head including the final empty line
}

// ParseRequest parses the request head at the start of buf into r, reusing r.Fields' array.
// It returns nil for a head in the strict subset the fast path forwards (see the package
// documentation), ErrIncomplete if buf holds no whole head yet and nothing seen so far is
// unsupported, and *Unsupported otherwise, possibly before the head is complete; after an
// error, r holds nothing useful. It does not allocate once r.Fields has room for the
// head's fields.
func ParseRequest(buf []byte, r *Request) error {
	*r = Request{Fields: r.Fields[:0]}
	i, err := parseRequestLine(buf, r)
	if err != nil {
		return err
	}
	n := len(buf)
	hasHost := false
	for {
		if i >= n {
			return ErrIncomplete
		}
		switch buf[i] {
		case '\r':
			if i+1 >= n {
				return ErrIncomplete
			}
			if buf[i+1] != '\n' {
				return unsupported(reasonBareCR)
			}
			if !hasHost {
				return unsupported(reasonNoHost)
			}
			r.HeadLen = i + 2
			return nil
		case '\n':
			return unsupported(reasonBareLF)
		case ' ', '\t':
			return unsupported(reasonObsFold)
		}
		var f Field
		if i, err = parseField(buf, i, &f); err != nil {
			return err
		}
		switch f.Kind {
		case KindHost:
			if hasHost {
				return unsupported(reasonDupHost)
			}
			if !validHost(f.Value) {
				return unsupported(reasonHost)
			}
			hasHost = true
			r.Host = f.Value
		case KindContentLength:
			if r.HasContentLength {
				return unsupported(reasonDupLength)
			}
			cl, ok := ParseContentLength(f.Value)
			if !ok {
				return unsupported(reasonLength)
			}
			r.ContentLength, r.HasContentLength = cl, true
		case KindConnection:
			for v := f.Value; len(v) > 0; {
				var tok []byte
				tok, v = NextToken(v)
				switch {
				case len(tok) == 0 || equalFold(tok, "keep-alive"):
				case equalFold(tok, "close"):
					r.Close = true
				default:
					return unsupported(reasonConnectionOpt)
				}
			}
		case KindTransferEncoding:
			return unsupported(reasonTransferEncoding)
		case KindUpgrade:
			return unsupported(reasonUpgrade)
		case KindExpect:
			return unsupported(reasonExpect)
		case KindTE:
			return unsupported(reasonTE)
		case KindTrailer:
			return unsupported(reasonTrailer)
		}
		r.Fields = append(r.Fields, f)
	}
}

// httpVersion is the only version the fast path takes, with the request line's end.
const httpVersion = " HTTP/1.1\r\n"

// parseRequestLine parses "METHOD SP TARGET SP HTTP/1.1 CR LF" at the start of buf into r
// and returns the offset after it.
func parseRequestLine(buf []byte, r *Request) (int, error) {
	n := len(buf)
	i := 0
	for i < n && tcharSet[buf[i]] {
		i++
	}
	if i == n {
		return 0, ErrIncomplete
	}
	if i == 0 {
		return 0, unsupported(reasonRequestLine) // a leading empty line, or garbage
	}
	if buf[i] != ' ' {
		return 0, unsupported(reasonMethod)
	}
	r.Method = buf[:i]
	switch {
	case equalFold(r.Method, "CONNECT"):
		return 0, unsupported(reasonConnect)
	case equalFold(r.Method, "PRI"):
		return 0, unsupported(reasonPRI)
	}

	i++
	start := i
	if i == n {
		return 0, ErrIncomplete
	}
	if buf[i] != '/' {
		return 0, unsupported(reasonTarget) // absolute-form, authority-form, '*', or a second SP
	}
	i, err := scanURIPart(buf, i, pathSet)
	if err != nil {
		return 0, err
	}
	r.Path = buf[start:i]
	if buf[i] == '?' {
		q := i + 1
		if i, err = scanURIPart(buf, q, querySet); err != nil {
			return 0, err
		}
		r.Query = buf[q:i]
	}
	if buf[i] != ' ' {
		return 0, unsupported(reasonTarget)
	}
	r.Target = buf[start:i]

	rest := buf[i:]
	if len(rest) < len(httpVersion) {
		if string(rest) == httpVersion[:len(rest)] {
			return 0, ErrIncomplete
		}
	} else if string(rest[:len(httpVersion)]) == httpVersion {
		return i + len(httpVersion), nil
	}
	return 0, versionReason(rest)
}

// versionReason explains why rest, " HTTP/1.1\r\n" on a good request line, is something else.
func versionReason(rest []byte) error {
	const v10 = " HTTP/1.0"
	const v11 = " HTTP/1.1"
	switch {
	case len(rest) >= len(v10) && string(rest[:len(v10)]) == v10:
		return unsupported(reasonHTTP10)
	case len(rest) > len(v11) && string(rest[:len(v11)]) == v11 && rest[len(v11)] == '\n':
		return unsupported(reasonBareLF)
	}
	return unsupported(reasonVersion)
}

// scanURIPart returns the offset of the first byte from i on that is neither in set nor
// part of a valid %XX escape. It returns ErrIncomplete when buf ends first, and an
// *Unsupported for a bad escape.
func scanURIPart(buf []byte, i int, set *byteSet) (int, error) {
	n := len(buf)
	for i < n {
		c := buf[i]
		if set[c] {
			i++
			continue
		}
		if c != '%' {
			return i, nil
		}
		switch {
		case i+1 < n && !isHex(buf[i+1]), i+2 < n && !isHex(buf[i+2]):
			return 0, unsupported(reasonTarget)
		case i+2 >= n:
			return 0, ErrIncomplete
		}
		i += 3
	}
	return 0, ErrIncomplete
}

// parseField parses the header field line at buf[i:] into f and returns the offset after
// its CR LF. buf[i] is neither SP, HTAB, CR nor LF.
func parseField(buf []byte, i int, f *Field) (int, error) {
	n := len(buf)
	start := i
	for i < n && tcharSet[buf[i]] {
		i++
	}
	if i == n {
		return 0, ErrIncomplete
	}
	if buf[i] != ':' || i == start {
		return 0, unsupported(reasonFieldName) // no colon, whitespace before it, or a bad byte
	}
	nameEnd := i
	i++
	for i < n && isOWS(buf[i]) {
		i++
	}
	valueStart := i
	i = skipValue(buf, i)
	switch {
	case i == n:
		return 0, ErrIncomplete
	case buf[i] == '\n':
		return 0, unsupported(reasonBareLF)
	case buf[i] != '\r':
		return 0, unsupported(reasonFieldValue)
	case i+1 == n:
		return 0, ErrIncomplete
	case buf[i+1] != '\n':
		return 0, unsupported(reasonBareCR)
	}
	valueEnd := i
	for valueEnd > valueStart && isOWS(buf[valueEnd-1]) {
		valueEnd--
	}
	f.Name = buf[start:nameEnd]
	f.Value = buf[valueStart:valueEnd]
	f.Line = buf[start : i+2]
	f.Kind = Classify(f.Name)
	return i + 2, nil
}

// validHost reports whether h is a non-empty Host value of hostSet bytes.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, c := range h {
		if !hostSet[c] {
			return false
		}
	}
	return true
}

// skipValue returns the offset of the first byte from i on that is not a field value byte
// (HTAB, SP, VCHAR, obs-text), or len(buf). It tests eight bytes at a time for a byte
// below SP or a DEL, and looks at a word that has one byte by byte.
func skipValue(buf []byte, i int) int {
	const ones = 0x0101010101010101
	const highs = 0x8080808080808080
	n := len(buf)
	for {
		for i+8 <= n {
			x := binary.LittleEndian.Uint64(buf[i:])
			// A byte below 0x20 sets its high bit in (x - 0x20...) & ^x (and, through the
			// borrow, maybe higher ones: only the whole word's verdict counts); a DEL is a
			// zero byte in x ^ 0x7f....
			y := x ^ ones*0x7f
			if ((x-ones*0x20)&^x|(y-ones)&^y)&highs != 0 {
				break
			}
			i += 8
		}
		end := min(i+8, n)
		for ; i < end; i++ {
			if !valueSet[buf[i]] {
				return i
			}
		}
		if i == n {
			return n
		}
	}
}
