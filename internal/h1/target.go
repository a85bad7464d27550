package h1

import (
	"bytes"
	"net/netip"
)

// TargetForm is the form of a request-target (RFC 9112 section 3.2).
type TargetForm uint8

// The request-target forms lb takes; the authority-form belongs to CONNECT, which lb refuses.
const (
	OriginForm   TargetForm = iota // /path?query
	AbsoluteForm                   // http://authority/path?query
	AsteriskForm                   // * (OPTIONS only)
)

// parseTarget parses the request-target at buf[i:] into r (Target, Form, Origin, Path,
// Query, and for the absolute-form TargetHost) and returns the offset of the byte after it,
// which is not yet checked. It returns ErrIncomplete when buf ends first.
func parseTarget(buf []byte, i int, r *Request) (int, error) {
	n := len(buf)
	start := i
	if i == n {
		return 0, ErrIncomplete
	}
	switch c := buf[i]; {
	case c == '/':
		r.Form = OriginForm
	case c == '*':
		if i+1 == n {
			return 0, ErrIncomplete
		}
		if !equalFold(r.Method, "OPTIONS") {
			return 0, refuse(reasonTarget)
		}
		r.Form = AsteriskForm
		r.Target, r.Origin, r.Path = buf[i:i+1], buf[i:i+1], buf[i:i+1]
		return i + 1, nil
	case c == 'h' || c == 'H':
		var err error
		if i, err = parseAbsolutePrefix(buf, i, r); err != nil {
			return 0, err
		}
		r.Form = AbsoluteForm
	default:
		return 0, refuse(reasonTarget) // authority-form, a relative reference, a second SP...
	}
	originStart := i
	pathEnd := i
	if i < n && buf[i] == '/' {
		var err error
		if i, err = scanURIPart(buf, i, pathSet); err != nil {
			return 0, err
		}
		pathEnd = i
	}
	if i == n {
		return 0, ErrIncomplete
	}
	r.Path = buf[originStart:pathEnd]
	if buf[i] == '?' {
		q := i + 1
		var err error
		if i, err = scanURIPart(buf, q, querySet); err != nil {
			return 0, err
		}
		r.Query = buf[q:i]
	}
	r.Target = buf[start:i]
	r.Origin = buf[originStart:i]
	return i, nil
}

// parseAbsolutePrefix parses "http://authority" or "https://authority" (the scheme in any
// case) at buf[i:] into r.TargetHost and returns the offset after the authority.
func parseAbsolutePrefix(buf []byte, i int, r *Request) (int, error) {
	n := len(buf)
	j := i
	for j < n && j-i < len("https") && (buf[j]|0x20 >= 'a' && buf[j]|0x20 <= 'z') {
		j++ // the scheme's letters: whatever else ends it, and is judged below
	}
	if j == n {
		return 0, ErrIncomplete
	}
	if scheme := buf[i:j]; !equalFold(scheme, "http") && !equalFold(scheme, "https") {
		return 0, refuse(reasonTarget)
	}
	for k, c := range []byte("://") {
		switch {
		case j+k >= n:
			return 0, ErrIncomplete
		case buf[j+k] != c:
			return 0, refuse(reasonTarget)
		}
	}
	j += len("://")
	hostStart := j
	for j < n && hostSet[buf[j]] {
		j++
	}
	if j == n {
		return 0, ErrIncomplete
	}
	if !validAuthority(buf[hostStart:j]) {
		return 0, refuse(reasonTarget)
	}
	r.TargetHost = buf[hostStart:j]
	return j, nil
}

// validAuthority reports whether a (hostSet bytes) is host [":" port] as net/url reads an
// absolute URI's authority: a non-empty name without '[', ']' or ':', or an IPv6 address in
// brackets, and a port of digits (maybe none).
func validAuthority(a []byte) bool {
	host, port := a, []byte(nil)
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 {
			return false
		}
		ip, err := netip.ParseAddr(string(a[1:end]))
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return false
		}
		host, port = nil, a[end+1:]
	} else if i := bytes.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
	}
	if host != nil && (len(host) == 0 || bytes.ContainsAny(host, "[]")) {
		return false
	}
	if len(port) == 0 {
		return true
	}
	if port[0] != ':' {
		return false
	}
	for _, c := range port[1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// scanURIPart returns the offset of the first byte from i on that is neither in set nor
// part of a valid %XX escape. It returns ErrIncomplete when buf ends first, and an *Error
// for a bad escape.
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
			return 0, refuse(reasonTarget)
		case i+2 >= n:
			return 0, ErrIncomplete
		}
		i += 3
	}
	return 0, ErrIncomplete
}
