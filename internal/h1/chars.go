package h1

// byteSet is a lookup table of allowed bytes. The package-level sets below are built once
// at initialisation and only read afterwards.
type byteSet [256]bool

// newByteSet returns the set of the bytes in each of parts.
func newByteSet(parts ...string) *byteSet {
	var s byteSet
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			s[p[i]] = true
		}
	}
	return &s
}

const (
	alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	digit = "0123456789"
)

var (
	// tcharSet is RFC 9110's tchar, the bytes of a token (method, field name).
	tcharSet = newByteSet(alpha, digit, "!#$%&'*+-.^_`|~")
	// pathSet is the bytes a target's path may hold besides a valid %XX escape: VCHAR but
	// '#' (a fragment is never sent), '%' (escapes only) and '?' (the query's start). It
	// takes what net/http's server takes in a path, byte for byte, so that the path lb
	// forwards verbatim is the path the backend reads.
	pathSet = newVCharSet("#%?")
	// querySet is the bytes a query may hold besides a valid %XX escape: VCHAR but '#' and '%'.
	querySet = newVCharSet("#%")
	// hostSet is the bytes a Host value may hold: RFC 3986's unreserved and sub-delims, and
	// ':', '[' and ']' for ports and IP literals. It is a subset of what net/http's server
	// accepts (httpguts.ValidHostHeader), without its '%'.
	hostSet = newByteSet(alpha, digit, "-._~!$&'()*+,;=:[]")
	// valueSet is the bytes of a field value: HTAB, SP, VCHAR and obs-text.
	valueSet = newValueSet()
)

// newVCharSet returns the set of VCHAR bytes (0x21-0x7E) except those in but.
func newVCharSet(but string) *byteSet {
	var s byteSet
	for c := byte(0x21); c <= 0x7e; c++ {
		s[c] = true
	}
	for i := 0; i < len(but); i++ {
		s[but[i]] = false
	}
	return &s
}

// newValueSet returns the set of field value bytes: HTAB, SP, 0x21-0x7E and 0x80-0xFF.
func newValueSet() *byteSet {
	var s byteSet
	for c := range s {
		s[c] = c == '\t' || c >= ' ' && c != 0x7f
	}
	return &s
}

// isOWS reports whether c is optional whitespace (SP or HTAB).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS returns v without leading and trailing SP and HTAB.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && isOWS(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isOWS(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

// unhex returns the value of the hex digit c, or -1.
func unhex(c byte) int64 {
	switch {
	case '0' <= c && c <= '9':
		return int64(c - '0')
	case 'a' <= c && c <= 'f':
		return int64(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int64(c - 'A' + 10)
	}
	return -1
}

// isHex reports whether c is a hex digit.
func isHex(c byte) bool { return unhex(c) >= 0 }

// EqualFold reports whether b equals s, ASCII case-insensitively (no allocation, unlike
// bytes.EqualFold on a converted string, and no Unicode folding).
func EqualFold(b []byte, s string) bool { return equalFold(b, s) }

// equalFold reports whether b equals s, ASCII case-insensitively.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// lower returns the ASCII letter c in lower case, and any other byte unchanged.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
