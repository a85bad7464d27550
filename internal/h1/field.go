package h1

import "encoding/binary"

// Field is one header (or trailer) field line.
type Field struct {
	Name  []byte // as sent
	Value []byte // without leading and trailing SP and HTAB
	Line  []byte // the whole line including its CR LF, to forward verbatim
	Kind  Kind
}

// nextField reads what follows a line ending at buf[i:]: the empty line that ends a head
// (end true, next just past it) or a field line, parsed into f. It returns ErrIncomplete
// when buf ends first and an *Error for a line the rules refuse: a bare LF or CR, an
// obsolete line folding (a line starting with SP or HTAB), a field name that is not a token
// or is followed by whitespace, a value with a CTL other than HTAB, or DEL.
func nextField(buf []byte, i int, f *Field) (next int, end bool, err error) {
	n := len(buf)
	if i >= n {
		return 0, false, ErrIncomplete
	}
	switch buf[i] {
	case '\r':
		switch {
		case i+1 >= n:
			return 0, false, ErrIncomplete
		case buf[i+1] != '\n':
			return 0, false, refuse(reasonBareCR)
		}
		return i + 2, true, nil
	case '\n':
		return 0, false, refuse(reasonBareLF)
	case ' ', '\t':
		return 0, false, refuse(reasonObsFold)
	}
	next, err = scanField(buf, i, f)
	return next, false, err
}

// scanField parses the field line at buf[i:] into f and returns the offset after its CR LF.
// buf[i] is neither SP, HTAB, CR nor LF.
func scanField(buf []byte, i int, f *Field) (int, error) {
	n := len(buf)
	start := i
	for i < n && tcharSet[buf[i]] {
		i++
	}
	if i == n {
		return 0, ErrIncomplete
	}
	if buf[i] != ':' || i == start {
		return 0, refuse(reasonFieldName) // no colon, whitespace before it, or a bad byte
	}
	nameEnd := i
	i++
	for i < n && isOWS(buf[i]) {
		i++
	}
	valueStart := i
	i = skipValue(buf, i)
	if _, err := lineEnd(buf, i, reasonFieldValue); err != nil {
		return 0, err
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

// lineEnd checks that a line ends with CR LF at buf[i:] and returns the offset after it:
// ErrIncomplete when buf ends first, a bare LF or CR refused, and any other byte refused with
// reason.
func lineEnd(buf []byte, i int, reason string) (int, error) {
	n := len(buf)
	switch {
	case i == n:
		return 0, ErrIncomplete
	case buf[i] == '\n':
		return 0, refuse(reasonBareLF)
	case buf[i] != '\r':
		return 0, refuse(reason)
	case i+1 == n:
		return 0, ErrIncomplete
	case buf[i+1] != '\n':
		return 0, refuse(reasonBareCR)
	}
	return i + 2, nil
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

// ValidFieldName reports whether name is a token, as a field name must be.
func ValidFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tcharSet[name[i]] {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether v holds only field value bytes (HTAB, SP, VCHAR,
// obs-text): no CR, LF, NUL or other CTL.
func ValidFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !valueSet[v[i]] {
			return false
		}
	}
	return true
}

// contentLength folds one Content-Length field value v into *n and *first (the first value
// seen, nil before): a value of 1 to 18 ASCII digits, byte for byte the same as any seen
// before ("5" and "05" differ, as they do for net/http). It returns the reason to refuse, or "".
func contentLength(v []byte, n *int64, first *[]byte) string {
	if *first != nil {
		if string(v) != string(*first) {
			return reasonDifferingLength
		}
		return ""
	}
	cl, ok := ParseContentLength(v)
	if !ok {
		return reasonLength
	}
	*n, *first = cl, v
	return ""
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

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
