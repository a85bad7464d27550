package h1

// Chunked follows a body in the chunked transfer coding (RFC 9112 section 7.1) byte by byte,
// so that it needs no buffer and a line may arrive in any number of pieces. Its zero value is
// at the start of a body. The rules:
//
//	chunk      = 1*15HEXDIG [ ";" ext ] CRLF data CRLF    (or 1*15HEXDIG *(SP / HTAB) CRLF ...)
//	last-chunk = 1*15("0") [ ";" ext ] CRLF
//	trailer    = *( field-line CRLF ) CRLF
//
// where ext is field value bytes (no CTL but HTAB), a size line is at most 4 KiB and the
// trailer section at most 64 KiB. A size of 16 hex digits or more, whitespace before a ';',
// a bare CR or LF, anything but CR LF after a chunk's data, or a trailer line that is not a
// field line is an *Error. net/http's chunked reader takes no more than this.
type Chunked struct {
	state   uint8
	left    int64 // data bytes left in the current chunk; the size while it is read
	digits  int   // hex digits of the size read so far
	lineLen int   // bytes of the size line, or of the trailer section, so far
}

// Chunked states.
const (
	chSize         uint8 = iota // hex digits of a chunk size
	chSizeSpace                 // whitespace after the size
	chExt                       // chunk extensions after ';'
	chSizeLF                    // LF ending a size line
	chData                      // chunk data
	chDataCR                    // CR after the data
	chDataLF                    // LF after the data
	chLineStart                 // the start of a trailer line or of the final empty line
	chTrailerName               // a trailer field's name
	chTrailerValue              // a trailer field's value
	chTrailerLF                 // LF ending a trailer line
	chEndLF                     // LF of the final empty line
	chDone                      // the body is over
	chFailed                    // an error was returned
)

// Limits of a chunked body's framing.
const (
	maxChunkDigits  = 15
	maxChunkLine    = 4 << 10
	maxTrailerBytes = 64 << 10
)

// Done reports whether the body ended (the final CR LF was consumed).
func (c *Chunked) Done() bool { return c.state == chDone }

// DataLeft returns how many bytes of chunk data come next (0 unless the scanner is in a
// chunk's data): a caller may read them elsewhere and Skip them.
func (c *Chunked) DataLeft() int64 {
	if c.state != chData {
		return 0
	}
	return c.left
}

// Skip consumes n bytes of chunk data read elsewhere; n is at most DataLeft().
func (c *Chunked) Skip(n int64) {
	if c.state != chData || n <= 0 {
		return
	}
	c.left -= min(n, c.left)
	if c.left == 0 {
		c.state = chDataCR
	}
}

// Trailing reports whether the next bytes belong to the trailer section.
func (c *Chunked) Trailing() bool { return c.state >= chLineStart && c.state <= chEndLF }

// Next consumes the next bytes of the body from b, and returns how many it took: a run of
// chunk data (data true) or of framing (a size line, the CR LF after data, the trailer
// section), never both. It takes nothing once the body is Done. A framing error is an
// *Error, after which Next takes nothing more.
func (c *Chunked) Next(b []byte) (n int, data bool, err error) {
	if len(b) == 0 || c.state == chDone {
		return 0, false, nil
	}
	if c.state == chFailed {
		return 0, false, refuse(reasonChunkSize)
	}
	if c.state == chData {
		n := int(min(int64(len(b)), c.left))
		c.left -= int64(n)
		if c.left == 0 {
			c.state = chDataCR
		}
		return n, true, nil
	}
	for i, ch := range b {
		if reason := c.step(ch); reason != "" {
			c.state = chFailed
			return i, false, refuse(reason)
		}
		if c.state == chData || c.state == chDone || c.state == chLineStart && c.lineLen == 0 {
			return i + 1, false, nil // data, the end, or the trailer section begins
		}
	}
	return len(b), false, nil
}

// step advances the framing by one byte; it returns the reason to refuse the body, or "".
func (c *Chunked) step(ch byte) string {
	switch c.state {
	case chSize, chSizeSpace, chExt, chSizeLF:
		c.lineLen++
		if c.lineLen > maxChunkLine {
			return reasonChunkLine
		}
	case chLineStart, chTrailerName, chTrailerValue, chTrailerLF, chEndLF:
		c.lineLen++
		if c.lineLen > maxTrailerBytes {
			return reasonTrailerTooLarge
		}
	}
	switch c.state {
	case chSize:
		if d := unhex(ch); d >= 0 {
			if c.digits == maxChunkDigits {
				return reasonChunkSize
			}
			c.digits++
			c.left = c.left<<4 | d
			return ""
		}
		if c.digits == 0 {
			return reasonChunkSize
		}
		switch {
		case ch == ';':
			c.state = chExt
		case isOWS(ch):
			c.state = chSizeSpace
		case ch == '\r':
			c.state = chSizeLF
		default:
			return sizeLineReason(ch)
		}
	case chSizeSpace:
		switch {
		case isOWS(ch):
		case ch == '\r':
			c.state = chSizeLF
		default:
			return sizeLineReason(ch) // whitespace before ';' too, as net/http
		}
	case chExt:
		switch {
		case ch == '\r':
			c.state = chSizeLF
		case !valueSet[ch]:
			return sizeLineReason(ch)
		}
	case chSizeLF:
		if ch != '\n' {
			return reasonBareCR
		}
		c.lineLen = 0
		if c.left == 0 {
			c.state = chLineStart
		} else {
			c.state = chData
		}
	case chDataCR:
		if ch != '\r' {
			return reasonChunkEnd
		}
		c.state = chDataLF
	case chDataLF:
		if ch != '\n' {
			return reasonChunkEnd
		}
		*c = Chunked{state: chSize}
	case chLineStart:
		switch {
		case ch == '\r':
			c.state = chEndLF
		case tcharSet[ch]:
			c.state = chTrailerName
		default:
			return reasonTrailer // obs-fold, a bare LF, a bad name byte
		}
	case chTrailerName:
		switch {
		case ch == ':':
			c.state = chTrailerValue
		case !tcharSet[ch]:
			return reasonTrailer
		}
	case chTrailerValue:
		switch {
		case ch == '\r':
			c.state = chTrailerLF
		case !valueSet[ch]:
			return reasonTrailer
		}
	case chTrailerLF:
		if ch != '\n' {
			return reasonBareCR
		}
		c.state = chLineStart
	case chEndLF:
		if ch != '\n' {
			return reasonBareCR
		}
		c.state = chDone
	}
	return ""
}

// sizeLineReason names what is wrong with byte ch on a chunk-size line.
func sizeLineReason(ch byte) string {
	if ch == '\n' {
		return reasonBareLF
	}
	return reasonChunkSize
}

// ParseTrailer parses a trailer section as Chunked consumed it (the field lines and the
// final CR LF) into fields, appended to dst.
func ParseTrailer(dst []Field, section []byte) ([]Field, error) {
	for i := 0; ; {
		var f Field
		next, end, err := nextField(section, i, &f)
		if err != nil {
			return dst, err
		}
		if end {
			return dst, nil
		}
		dst = append(dst, f)
		i = next
	}
}
