// Package h1 holds strict, allocation-free HTTP/1.1 syntax helpers over byte slices for
// lb's fast forwarding path.
//
// The fast path forwards only requests whose head it fully understands. ParseRequest
// accepts a strict subset of HTTP/1.1 (origin-form targets that net/url and
// httputil.ReverseProxy would send on byte for byte, CR LF line endings, one valid Host,
// at most one plain Content-Length, no Transfer-Encoding, Upgrade, Expect, TE or Trailer,
// Connection limited to close and keep-alive) and returns *Unsupported for every other
// head, valid or not. The caller then hands the connection, bytes intact, to net/http,
// which accepts or rejects it. ParseRequest must therefore never accept a head that
// net/http would reject or read differently: a request the two paths frame differently is
// a request-smuggling bug, while a head refused here only costs speed. Its tests check
// this against http.ReadRequest and a real http.Server.
//
// The response side (ParseStatusLine, ParseField, ParseContentLength, ParseChunkSize)
// reads our own backends' responses line by line; AppendStatusLine and DateCache write
// what net/http's server would write.
package h1

import "errors"

// ErrIncomplete means buf does not yet hold a whole request head (no empty line found).
var ErrIncomplete = errors.New("h1: incomplete head")

// Unsupported is a request head the fast path leaves to net/http: valid HTTP it does not
// handle, or invalid HTTP.
type Unsupported struct {
	// Reason is a short fixed text, such as "transfer-encoding", "http/1.0" or "obs-fold".
	Reason string
}

// Error returns "h1: unsupported request: " followed by the reason.
func (e *Unsupported) Error() string { return "h1: unsupported request: " + e.Reason }

// unsupported returns an *Unsupported with reason.
func unsupported(reason string) error { return &Unsupported{Reason: reason} }

// The reasons ParseRequest gives.
const (
	reasonRequestLine      = "bad request line"
	reasonMethod           = "bad method"
	reasonConnect          = "connect"
	reasonPRI              = "pri"
	reasonTarget           = "bad target"
	reasonHTTP10           = "http/1.0"
	reasonVersion          = "bad version"
	reasonBareLF           = "bare lf"
	reasonBareCR           = "bare cr"
	reasonObsFold          = "obs-fold"
	reasonFieldName        = "bad field name"
	reasonFieldValue       = "bad field value"
	reasonNoHost           = "no host"
	reasonDupHost          = "duplicate host"
	reasonHost             = "bad host"
	reasonDupLength        = "duplicate content-length"
	reasonLength           = "bad content-length"
	reasonTransferEncoding = "transfer-encoding"
	reasonUpgrade          = "upgrade"
	reasonExpect           = "expect"
	reasonTE               = "te"
	reasonTrailer          = "trailer"
	reasonConnectionOpt    = "connection option"
)
