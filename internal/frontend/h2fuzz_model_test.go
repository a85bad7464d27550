package frontend

import (
	"strings"

	"golang.org/x/net/http2/hpack"
)

// h2Verdict is what RFC 9113 (and lb's documented refusals) make of a stream.
type h2Verdict uint8

const (
	h2WellFormed h2Verdict = iota // must reach the backend and be answered with its answer
	h2Tolerated                   // may reach it or be refused (a SHOULD, or a limit)
	h2Late                        // malformed after its head (body, trailers, end)
	h2Refused                     // malformed in its header block: must never reach it
)

var h2VerdictNames = [...]string{"well-formed", "tolerated", "malformed after its head", "malformed head"}

// h2Model is the client's own reading of a stream.
type h2Model struct {
	verdict     h2Verdict
	why         string
	method      string
	path        string
	scheme      string
	declared    int64    // the content-length, -1 for none
	clDelivered bool     // a late malformation came after the declared length's DATA was complete
	refusedFor  []string // every reason the head is malformed
	framerFails bool     // x/net's Framer refuses the header block (a stream error)
}

// Reasons that h2Differences names.
const (
	whyAbsolutePath  = "a :path in absolute form"
	whyCLWithoutData = "a content-length on a stream the HEADERS ended"
	whyCLDisagree    = "two content-lengths that disagree"
	whyCLNotDigits   = "a content-length that is not digits"
	whyTEEmpty       = "an empty te"
)

// classify reads r as RFC 9113 sections 8.1-8.3 and 8.2.1-8.2.3 do, independently of lb's code.
func classify(r *h2Req) h2Model {
	m := h2Model{declared: -1}
	worst := func(v h2Verdict, why string) {
		if v > m.verdict || m.why == "" && v == m.verdict && v != h2WellFormed {
			m.verdict, m.why = v, why
		}
		if v == h2Refused {
			m.refusedFor = append(m.refusedFor, why)
		}
	}
	pseudo := map[string]int{}
	var authority, host string
	hosts, sawRegular := 0, false
	for _, f := range r.fields {
		if !h2ValidValue(f.Value) {
			m.framerFails = true
			worst(h2Refused, "a value with NUL, CR, LF or another control byte: "+f.Name)
		} else if strings.TrimSpace(f.Value) != f.Value {
			worst(h2Tolerated, "a value with leading or trailing whitespace")
		}
		if strings.HasPrefix(f.Name, ":") {
			pseudo[f.Name]++
			switch {
			case sawRegular:
				m.framerFails = true
				worst(h2Refused, "a pseudo-field after a field")
			case pseudo[f.Name] > 1:
				m.framerFails = true
				worst(h2Refused, "a duplicate "+f.Name)
			}
			switch f.Name {
			case ":method":
				m.method = f.Value
			case ":path":
				m.path = f.Value
			case ":scheme":
				m.scheme = f.Value
			case ":authority":
				authority = f.Value
			default:
				// x/net's Framer refuses all but :protocol and :status, and :status beside
				// a request's pseudo-fields (checkPseudos).
				m.framerFails = m.framerFails || f.Name != ":protocol" && f.Name != ":status"
				worst(h2Refused, "an unknown pseudo-field "+f.Name)
			}
			continue
		}
		sawRegular = true
		switch {
		case !h2ValidName(f.Name):
			m.framerFails = true
			worst(h2Refused, "a field name that is not a lower-case token: "+f.Name)
		case f.Name == "connection" || f.Name == "keep-alive" || f.Name == "proxy-connection" ||
			f.Name == "transfer-encoding" || f.Name == "upgrade":
			worst(h2Refused, "a connection-specific field: "+f.Name)
		case f.Name == "te" && f.Value == "":
			worst(h2Refused, whyTEEmpty)
		case f.Name == "te" && f.Value != "trailers":
			worst(h2Refused, "te other than trailers")
		case f.Name == "host":
			hosts++
			host = f.Value
		case f.Name == "content-length":
			n, ok := parseDigits(f.Value)
			switch {
			case !ok:
				worst(h2Refused, whyCLNotDigits)
			case m.declared >= 0 && n != m.declared:
				worst(h2Refused, whyCLDisagree)
			case m.declared >= 0:
				worst(h2Tolerated, "a repeated content-length")
			}
			if ok {
				m.declared = n
			}
		}
	}
	if pseudo[":status"] > 0 && len(pseudo) > 1 {
		m.framerFails = true
	}
	switch {
	case m.method == "":
		worst(h2Refused, "no :method")
	case m.method == "CONNECT":
		worst(h2Refused, "CONNECT (lb refuses it)")
	case !h2Token(m.method):
		worst(h2Refused, "a :method that is not a token")
	case m.scheme == "" || pseudo[":path"] == 0:
		worst(h2Refused, "no :scheme or no :path")
	case m.path == "":
		worst(h2Refused, "an empty :path")
	case m.path == "*" && m.method != "OPTIONS":
		worst(h2Refused, ":path * other than with OPTIONS")
	case m.path != "*" && m.path[0] != '/' && strings.Contains(m.path, "://"):
		worst(h2Refused, whyAbsolutePath)
	case m.path != "*" && m.path[0] != '/':
		worst(h2Refused, "a :path that does not start with /")
	case !h2PlainBytes(m.path):
		worst(h2Refused, "a :path with a space or control byte")
	case !h2OriginBytes(m.path):
		worst(h2Tolerated, "a :path with bytes RFC 3986 does not allow")
	}
	if m.scheme != "" && m.scheme != "https" && m.scheme != "http" {
		worst(h2Tolerated, "a :scheme other than http or https")
	}
	switch {
	case authority == "" && host == "":
		worst(h2Refused, "no :authority and no host")
	case !h2PlainBytes(authority) || !h2PlainBytes(host):
		worst(h2Refused, "a host with a space or control byte")
	case !h2HostBytes(authority) || !h2HostBytes(host):
		worst(h2Tolerated, "a host with bytes RFC 3986 does not allow")
	case authority != "" && host != "" && authority != host, hosts > 1:
		worst(h2Tolerated, "host and :authority disagree")
	}
	if listSize(r.fields) > h2BigHeaderList || r.hasTrailers && listSize(r.trailers) > h2BigHeaderList {
		worst(h2Tolerated, "a field section near or over max_header_bytes (431, or a frame over 16 KB)")
	}
	if r.end == endOnLast && len(r.data) == 0 && !r.hasTrailers && m.declared > 0 {
		worst(h2Refused, whyCLWithoutData)
	}
	classifyBody(r, &m, worst)
	return m
}

// classifyBody judges what follows the head.
func classifyBody(r *h2Req, m *h2Model, worst func(h2Verdict, string)) {
	var sum int64
	m.clDelivered = m.declared == 0
	for _, d := range r.data {
		sum += int64(len(d))
		if m.declared >= 0 && sum == m.declared {
			m.clDelivered = true
		}
	}
	if r.hasTrailers {
		for _, f := range r.trailers {
			switch {
			case strings.HasPrefix(f.Name, ":"):
				worst(h2Late, "a pseudo-field in the trailers")
			case !h2ValidName(f.Name) || !h2ValidValue(f.Value):
				worst(h2Late, "an invalid trailer field")
			}
		}
		if r.trailersOpen {
			worst(h2Late, "trailers without END_STREAM")
		}
	}
	switch {
	case r.end == endReset:
		worst(h2Late, "reset by the client")
	case !r.ended():
		worst(h2Late, "never ended")
	case m.declared >= 0 && sum != m.declared:
		worst(h2Late, "a content-length other than the DATA's length")
	}
	if m.declared < 0 || m.declared > sum {
		m.clDelivered = false
	}
}

// h2BigHeaderList is a field section size (RFC 7541 4.1) from which the rig's limits may
// refuse a request: its max_header_bytes is 16 KB, and a HEADERS frame the client does not
// split must stay under 16 KB.
const h2BigHeaderList = 12 << 10

func listSize(fs []hpack.HeaderField) int {
	n := 0
	for _, f := range fs {
		n += int(f.Size())
	}
	return n
}

// h2ValidName: a token without upper case (RFC 9113 8.2.1).
func h2ValidName(s string) bool { return h2Token(s) && strings.ToLower(s) == s }

func h2Token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// h2ValidValue: no control byte but HTAB (as the framer's check, a superset of 8.2.1's).
func h2ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// h2PlainBytes: no space, control byte or DEL (what can go in a request line or Host).
func h2PlainBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// h2OriginBytes: an origin-form target's bytes (RFC 3986 pchar, "/", "?", escapes), or "*".
func h2OriginBytes(s string) bool {
	if s == "*" {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%':
			if i+2 >= len(s) || !isHexDigit(s[i+1]) || !isHexDigit(s[i+2]) {
				return false
			}
			i += 2
		case !h2Unreserved(c) && strings.IndexByte("!$&'()*+,;=:@/?", c) < 0:
			return false
		}
	}
	return true
}

// h2HostBytes: a host and port's bytes (RFC 3986 reg-name, IP literals, port).
func h2HostBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !h2Unreserved(c) && strings.IndexByte("!$&'()*+,;=:[]", c) < 0 {
			return false
		}
	}
	return true
}

func h2Unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func parseDigits(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}
