package h1

import "bytes"

// NextToken returns the first comma-separated element of v, trimmed of SP and HTAB, and
// the rest of v after its comma (nil if there is none), to iterate over a list such as a
// Connection value: for v := value; len(v) > 0; { tok, v = NextToken(v); ... }.
func NextToken(v []byte) (tok, rest []byte) {
	i := bytes.IndexByte(v, ',')
	if i < 0 {
		return trimOWS(v), nil
	}
	return trimOWS(v[:i]), v[i+1:]
}

// HasToken reports whether the comma-separated list v has an element equal to token,
// ASCII case-insensitively, ignoring SP and HTAB around elements and empty elements.
func HasToken(v []byte, token string) bool {
	if len(token) == 0 {
		return false
	}
	for len(v) > 0 {
		var tok []byte
		tok, v = NextToken(v)
		if equalFold(tok, token) {
			return true
		}
	}
	return false
}
