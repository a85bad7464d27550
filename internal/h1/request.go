package h1

// Request is a parsed request head; its slices point into the buffer given to ParseRequest.
type Request struct {
	Method []byte     // e.g. GET
	Target []byte     // the request-target as sent
	Form   TargetForm // which form Target has
	// Origin is the target a backend gets: Target itself in the origin and asterisk forms,
	// the path and query of an absolute-form target (empty or starting with '?' when the
	// target had no path: send "/" before it).
	Origin     []byte
	Path       []byte // Origin before the first '?' (still percent-encoded)
	Query      []byte // after the first '?', without it; nil if there is no '?'
	TargetHost []byte // the authority of an absolute-form target, else nil
	// Host is the request's host: the authority of an absolute-form target, else the value
	// of the Host field (nil in an HTTP/1.0 request without one).
	Host  []byte
	Minor int // 1 for HTTP/1.1, 0 for HTTP/1.0

	ContentLength    int64 // 0 when there is no Content-Length field
	HasContentLength bool  // there is a Content-Length field
	Chunked          bool  // Transfer-Encoding: chunked (HTTP/1.1 only)

	// Close is set when the connection ends after this request: "Connection: close", or
	// HTTP/1.0 without "Connection: keep-alive".
	Close bool
	// Upgrade is the Upgrade field's value when an HTTP/1.1 request asks to switch
	// protocols (Connection lists "upgrade"), else nil.
	Upgrade []byte
	// ExpectContinue is set when an HTTP/1.1 request with a body waits for "100 Continue".
	ExpectContinue bool
	// ConnectionNames is set when a Connection field names other fields (besides close,
	// keep-alive and upgrade): those are hop-by-hop too.
	ConnectionNames bool

	Fields  []Field // every header field line in order (Host included)
	HeadLen int     // bytes of the head including the final empty line
}

// HasBody reports whether a body follows the head.
func (r *Request) HasBody() bool { return r.Chunked || r.ContentLength > 0 }

// ParseRequest parses the request head at the start of buf into r, reusing r.Fields' array.
// It returns nil for a head it accepts, ErrIncomplete if buf holds no whole head yet and
// nothing so far is refused, and an *Error otherwise, possibly before the head is complete
// (the caller answers with the Error's status and closes the connection). After an error r
// holds nothing useful. It does not allocate once r.Fields has room for the head's fields.
func ParseRequest(buf []byte, r *Request) error {
	*r = Request{Fields: r.Fields[:0]}
	i, err := parseRequestLine(buf, r)
	if err != nil {
		return err
	}
	var (
		hostField     []byte
		hasHost       bool
		firstLength   []byte
		teFields      int
		keepAlive     bool
		upgradeToken  bool
		upgrade       []byte
		expectOther   bool
		wantsContinue bool
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
		case KindHost:
			if hasHost {
				return refuse(reasonDupHost)
			}
			if !validHost(f.Value) {
				return refuse(reasonHost)
			}
			hasHost, hostField = true, f.Value
		case KindContentLength:
			if reason := contentLength(f.Value, &r.ContentLength, &firstLength); reason != "" {
				return refuse(reason)
			}
			r.HasContentLength = true
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
					upgradeToken = true
				default:
					r.ConnectionNames = true
				}
			}
		case KindUpgrade:
			if upgrade != nil {
				return refuse(reasonDupUpgrade)
			}
			upgrade = f.Value
		case KindExpect:
			for v := f.Value; len(v) > 0; {
				var tok []byte
				tok, v = NextToken(v)
				switch {
				case len(tok) == 0:
				case equalFold(tok, "100-continue"):
					wantsContinue = true
				default:
					expectOther = true
				}
			}
		}
		r.Fields = append(r.Fields, f)
	}
	switch {
	case teFields > 0 && r.HasContentLength:
		return refuse(reasonLengthWithTE)
	case teFields > 0 && r.Minor == 0:
		return refuse(reasonTEInHTTP10)
	case r.Minor == 1 && !hasHost:
		return refuse(reasonNoHost)
	case expectOther:
		return &Error{Status: 417, Reason: reasonExpectation}
	}
	r.Chunked = teFields > 0
	r.Host = hostField
	if r.Form == AbsoluteForm {
		r.Host = r.TargetHost
	}
	if r.Minor == 0 {
		r.Close = r.Close || !keepAlive
	} else {
		r.ExpectContinue = wantsContinue && r.HasBody()
		if upgradeToken && len(upgrade) > 0 {
			r.Upgrade = upgrade
		}
	}
	return nil
}

// parseRequestLine parses "METHOD SP TARGET SP HTTP/1.x CR LF" at the start of buf into r
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
		return 0, refuse(reasonRequestLine) // a leading empty line, or garbage
	}
	if buf[i] != ' ' {
		return 0, refuse(reasonMethod)
	}
	r.Method = buf[:i]
	switch {
	case equalFold(r.Method, "CONNECT"):
		return 0, refuse(reasonConnect) // lb is no tunnel
	case equalFold(r.Method, "PRI"):
		return 0, refuse(reasonPRI) // an HTTP/2 preface on an HTTP/1 connection
	}
	i, err := parseTarget(buf, i+1, r)
	if err != nil {
		return 0, err
	}
	if buf[i] != ' ' {
		return 0, refuse(reasonTarget)
	}
	const version = " HTTP/1."
	rest := buf[i:]
	for k := 0; k < len(version)+3; k++ {
		if k == len(rest) {
			return 0, ErrIncomplete
		}
		c := rest[k]
		switch {
		case k < len(version):
			if c != version[k] {
				return 0, refuse(reasonVersion)
			}
		case k == len(version):
			if c != '0' && c != '1' {
				return 0, refuse(reasonVersion)
			}
			r.Minor = int(c - '0')
		case k == len(version)+1:
			switch c {
			case '\r':
			case '\n':
				return 0, refuse(reasonBareLF)
			default:
				return 0, refuse(reasonVersion)
			}
		default:
			if c != '\n' {
				return 0, refuse(reasonBareCR)
			}
		}
	}
	return i + len(version) + 3, nil
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

// ValidHost reports whether h may be sent as a Host value (as ParseRequest accepts one).
func ValidHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !hostSet[h[i]] {
			return false
		}
	}
	return true
}

// ValidOrigin reports whether target may be sent as an origin-form (or asterisk-form)
// request-target: the bytes and escapes ParseRequest accepts in one.
func ValidOrigin(target string) bool {
	if target == "*" {
		return true
	}
	if target == "" || target[0] != '/' {
		return false
	}
	set := pathSet
	for i := 0; i < len(target); i++ {
		switch c := target[i]; {
		case c == '?' && set == pathSet:
			set = querySet
		case c == '%':
			if i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2]) {
				return false
			}
			i += 2
		case !set[c]:
			return false
		}
	}
	return true
}
