package balancer

import (
	"bytes"
	"net/netip"
	"strconv"

	"outrigger/internal/clientip"
	"outrigger/internal/h1"
	"outrigger/internal/logging"
)

// This file is the one table of what a backend and a client may see, for every front end:
// which of a client's request fields go on to the backend (requestRules), which of a
// backend's response fields go on to the client (responseRules), and lb's own error answers.

// fieldRule is what becomes of a field on its way through lb.
type fieldRule uint8

const (
	pass      fieldRule = iota // sent on as it is
	hopByHop                   // belongs to one connection (RFC 9110 section 7.6.1): dropped
	spoofable                  // could fake the client's address: dropped, lb sets its own
	lbSets                     // lb frames the message or sets the field itself: dropped
	special                    // decided case by case (see Outgoing.field, filterResponse)
)

// requestRules says what becomes of each kind of request field a client sends.
var requestRules = [...]fieldRule{
	h1.KindOther:                   pass, // unless named by Connection, or a spoofable alias
	h1.KindHost:                    lbSets,
	h1.KindContentLength:           lbSets,
	h1.KindTransferEncoding:        lbSets,
	h1.KindConnection:              hopByHop,
	h1.KindKeepAlive:               hopByHop,
	h1.KindProxyConnection:         hopByHop,
	h1.KindProxyAuthenticate:       hopByHop,
	h1.KindProxyAuthorization:      hopByHop,
	h1.KindTE:                      hopByHop,
	h1.KindTrailer:                 hopByHop,
	h1.KindUpgrade:                 special, // kept when the request upgrades
	h1.KindExpect:                  lbSets,  // lb answers 100 Continue itself
	h1.KindXForwardedFor:           special, // kept (then extended) from a trusted peer only
	h1.KindXForwardedHost:          spoofable,
	h1.KindXForwardedProto:         spoofable,
	h1.KindForwarded:               spoofable,
	h1.KindXRealIP:                 spoofable,
	h1.KindXClientIP:               spoofable,
	h1.KindTrueClientIP:            spoofable,
	h1.KindXRequestID:              special, // the first valid one is kept, as lb's request id
	h1.KindDate:                    pass,
	h1.KindContentType:             pass,
	h1.KindStrictTransportSecurity: pass,
}

// responseRules says what becomes of each kind of response field a backend sends.
var responseRules = [...]fieldRule{
	h1.KindOther:                   pass, // unless named by Connection
	h1.KindHost:                    pass,
	h1.KindContentLength:           lbSets,
	h1.KindTransferEncoding:        lbSets,
	h1.KindConnection:              hopByHop,
	h1.KindKeepAlive:               hopByHop,
	h1.KindProxyConnection:         hopByHop,
	h1.KindProxyAuthenticate:       hopByHop,
	h1.KindProxyAuthorization:      hopByHop,
	h1.KindTE:                      hopByHop,
	h1.KindTrailer:                 special, // kept for a chunked body, whose trailer follows
	h1.KindUpgrade:                 special, // kept on a 101
	h1.KindExpect:                  pass,
	h1.KindXForwardedFor:           pass,
	h1.KindXForwardedHost:          pass,
	h1.KindXForwardedProto:         pass,
	h1.KindForwarded:               pass,
	h1.KindXRealIP:                 pass,
	h1.KindXClientIP:               pass,
	h1.KindTrueClientIP:            pass,
	h1.KindXRequestID:              lbSets, // lb echoes the request's id
	h1.KindDate:                    pass,
	h1.KindContentType:             pass,
	h1.KindStrictTransportSecurity: special, // lb's own replaces it when hsts is set
}

// Outgoing builds the head a backend receives: the request line, Host, the client's fields
// that requestRules lets through, then X-Forwarded-For, -Host and -Proto, X-Request-Id and
// the body's framing. A front end keeps one per connection and reuses it.
type Outgoing struct {
	buf        []byte
	peer       netip.Addr
	trusted    bool // the peer is a trusted proxy: its X-Forwarded-For is kept
	upgrade    bool // the request asks to switch protocols: Upgrade is kept
	connection []byte
	xff        []string
	host       []byte
	requestID  string
	idemKey    bool
	invalid    bool
}

// Begin starts the head of a request from peer (the client connection's address): method,
// target (origin-form or "*") and host ("" when an HTTP/1.0 client sent none). upgrade is
// set when the request asks to switch protocols; connection holds the Connection field
// values (comma-separated) when they name fields to drop, else nil.
func (o *Outgoing) Begin(p *Proxy, peer netip.Addr, method, target, host []byte, upgrade bool, connection []byte) {
	cfg := p.cfg.Load()
	o.peer, o.trusted = peer, cfg.TrustedProxies.Trusted(peer)
	o.upgrade, o.connection = upgrade, connection
	o.xff, o.requestID, o.idemKey, o.invalid = o.xff[:0], "", false, false
	b := append(o.buf[:0], method...)
	b = append(b, ' ')
	if len(target) == 0 || target[0] == '?' {
		b = append(b, '/') // an absolute-form target without a path
	}
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	hostAt := len(b)
	b = append(b, host...)
	o.host = b[hostAt:len(b):len(b)]
	o.buf = append(b, "\r\n"...)
}

// Field adds a client's field, as h1 parsed it, if requestRules lets it through.
func (o *Outgoing) Field(f *h1.Field) {
	if o.keep(f.Kind, f.Name, f.Value) {
		o.buf = append(o.buf, f.Line...)
	}
}

// Header adds a client's field given as strings (an HTTP/2 request), if requestRules lets
// it through. A name that is not a token or a value with a CTL makes the request invalid.
func (o *Outgoing) Header(name, value string) {
	if !h1.ValidFieldName(name) || !h1.ValidFieldValue(value) {
		o.invalid = true
		return
	}
	n := []byte(name)
	if !o.keep(h1.Classify(n), n, []byte(value)) {
		return
	}
	o.buf = append(o.buf, name...)
	o.buf = append(o.buf, ": "...)
	o.buf = append(o.buf, value...)
	o.buf = append(o.buf, "\r\n"...)
}

// Invalid reports whether Header was given a field that cannot be sent.
func (o *Outgoing) Invalid() bool { return o.invalid }

// keep applies requestRules to one field and notes what lb needs from it.
func (o *Outgoing) keep(kind h1.Kind, name, value []byte) bool {
	rule := pass
	if int(kind) < len(requestRules) {
		rule = requestRules[kind]
	}
	switch rule {
	case pass:
		if kind != h1.KindOther {
			return true
		}
		if o.connection != nil && h1.HasToken(o.connection, string(name)) {
			return false // named by Connection: hop-by-hop
		}
		if bytes.IndexByte(name, '_') >= 0 && clientip.SpoofableAlias(name) {
			return false
		}
		if isIdempotencyKey(name) {
			o.idemKey = true
		}
		return true
	case special:
		switch kind {
		case h1.KindUpgrade:
			return o.upgrade
		case h1.KindXForwardedFor:
			if o.trusted {
				o.xff = append(o.xff, string(value))
			}
		case h1.KindXRequestID:
			if o.requestID == "" {
				if id := string(value); logging.ValidRequestID(id) {
					o.requestID = id
				}
			}
		}
	}
	return false
}

// Finish ends the head with what lb sets and fills req's Head, RequestID, ClientIP and
// IdempotencyKey. tls tells the scheme the client used. The body's framing and the empty
// line are the exchange's (they depend on how Forward reads the body).
func (o *Outgoing) Finish(p *Proxy, req *Request, tls bool) {
	cfg := p.cfg.Load()
	b := o.buf
	if o.trusted {
		req.ClientIP = cfg.TrustedProxies.ClientIPFrom(o.peer, o.xff)
		if xff := cfg.TrustedProxies.ForwardedForFrom(o.peer, o.xff); xff != "" {
			b = appendField(b, "X-Forwarded-For: ", xff)
		}
	} else {
		req.ClientIP = o.peer
		if o.peer.IsValid() {
			b = append(b, "X-Forwarded-For: "...)
			b = o.peer.AppendTo(b)
			b = append(b, "\r\n"...)
		}
	}
	if len(o.host) > 0 {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, o.host...)
		b = append(b, "\r\n"...)
	}
	if tls {
		b = append(b, "X-Forwarded-Proto: https\r\n"...)
	} else {
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	if o.requestID == "" {
		o.requestID = p.ids.Next()
	}
	b = appendField(b, "X-Request-Id: ", o.requestID)
	if o.upgrade {
		b = append(b, "Connection: Upgrade\r\n"...)
	}
	o.buf = b
	req.Head = b
	req.RequestID = o.requestID
	req.IdempotencyKey = o.idemKey
}

// appendFraming appends the body's framing field and the empty line that ends a head.
func appendFraming(b []byte, body *Body, framed bool) []byte {
	switch {
	case body.Length < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case body.Length > 0 || framed:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, body.Length, 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// appendField appends "name: value\r\n" (name includes the colon and space).
func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// isIdempotencyKey reports whether name is Idempotency-Key or X-Idempotency-Key.
func isIdempotencyKey(name []byte) bool {
	return bytes.EqualFold(name, []byte("Idempotency-Key")) || bytes.EqualFold(name, []byte("X-Idempotency-Key"))
}

// filterResponse fills h with what a client may see of the backend's response r to req:
// the fields responseRules lets through (kept is their storage, reused), then what lb adds.
func filterResponse(h *ResponseHead, kept []h1.Field, r *h1.Response, req *Request, head bool) []h1.Field {
	kind := r.Body(head)
	*h = ResponseHead{Code: r.Code, Length: -1, RequestID: req.RequestID, HSTS: req.HSTS,
		Bodyless: kind == h1.BodyNone, Chunked: kind == h1.BodyChunked}
	if r.ContentLength >= 0 && (kind == h1.BodyLength || kind == h1.BodyNone && r.Code >= 200 && r.Code != 204) {
		h.Length = r.ContentLength // a HEAD's or a 304's length is passed on too
	}
	var connection []h1.Field
	if r.ConnectionNames {
		connection = r.Fields
	}
	kept = kept[:0]
	for i := range r.Fields {
		f := &r.Fields[i]
		rule := pass
		if int(f.Kind) < len(responseRules) {
			rule = responseRules[f.Kind]
		}
		switch rule {
		case pass:
			if f.Kind == h1.KindOther && connection != nil && namedByConnection(connection, f.Name) {
				continue
			}
			if f.Kind == h1.KindDate {
				h.HasDate = true
			}
		case special:
			switch f.Kind {
			case h1.KindTrailer:
				if !h.Chunked {
					continue
				}
			case h1.KindUpgrade:
				if r.Code != 101 {
					continue
				}
			case h1.KindStrictTransportSecurity:
				if req.HSTS != "" {
					continue // lb's own replaces it
				}
			}
		default:
			continue
		}
		kept = append(kept, *f)
	}
	h.Fields = kept
	return kept
}

// namedByConnection reports whether a Connection field among fields lists name.
func namedByConnection(fields []h1.Field, name []byte) bool {
	for i := range fields {
		if fields[i].Kind == h1.KindConnection && h1.HasToken(fields[i].Value, string(name)) {
			return true
		}
	}
	return false
}

// errorFields are the fields of lb's own error answers.
var errorFields = []h1.Field{
	staticField("Cache-Control", "no-store"),
	staticField("Content-Type", "application/json"),
	staticField("X-Content-Type-Options", "nosniff"),
}

// staticField returns the field name: value with its line.
func staticField(name, value string) h1.Field {
	line := []byte(name + ": " + value + "\r\n")
	return h1.Field{Name: line[:len(name)], Value: line[len(name)+2 : len(line)-2], Line: line, Kind: h1.Classify([]byte(name))}
}

// ErrorMessage is the fixed text of lb's own answer with code: never an internal error.
func ErrorMessage(code int) string {
	switch code {
	case 400:
		return "malformed request"
	case 408:
		return "request timeout"
	case 417:
		return "expectation failed"
	case 431:
		return "request header fields too large"
	case 502:
		return "backend unavailable"
	case 503:
		return "no backend available"
	case 504:
		return "backend timed out"
	}
	return "error"
}

// WriteError answers with lb's own error of code and msg (a fixed text) as a small JSON
// body: {"error":"msg"}. head is set for an answer to HEAD, which has no body. It returns
// the body's length.
func WriteError(c Client, code int, msg, requestID, hsts string, head bool) int64 {
	body := len(`{"error":""}`+"\n") + len(msg)
	h := ResponseHead{Code: code, Fields: errorFields, Length: int64(body), Bodyless: head, RequestID: requestID, HSTS: hsts}
	if c.Start(&h) != nil || head {
		return 0
	}
	var buf [128]byte
	b := append(buf[:0], `{"error":"`...)
	b = append(b, msg...)
	b = append(b, "\"}\n"...)
	if c.Write(b) != nil || c.Finish(nil) != nil {
		return 0
	}
	return int64(body)
}
