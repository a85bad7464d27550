// Package h1 is lb's one HTTP/1 parser: request heads, response heads, chunked bodies and
// the field rules, over byte slices and without allocating.
//
// Every HTTP/1 byte lb takes from a client or a backend is framed here, whichever internal
// path serves it (lb's own connection loop, the gate in front of net/http, the backend
// client), so that one set of rules decides where a request or a response begins and ends.
// The rules are DESIGN.md's "Protocol hygiene": a request head with both Content-Length and
// Transfer-Encoding, differing, empty or non-digit Content-Length values, a
// Transfer-Encoding other than exactly "chunked" in HTTP/1.1 or any in HTTP/1.0, an obsolete
// line folding, a space before a colon, a CR, LF or NUL inside a line is refused with an
// *Error (400), as is every other head that is not well-formed HTTP/1.0 or HTTP/1.1 (bare LF
// line ends included). What is accepted is accepted exactly as net/http reads it: the tests
// check ParseRequest against http.ReadRequest and a real http.Server, and ParseResponse
// against http.ReadResponse. A head that is refused costs a client an answer of 400; a head
// read differently by two parsers would be a request-smuggling hole.
//
// Limits that depend on the configuration (max_header_bytes) are the caller's: ParseRequest
// and ParseResponse parse whatever complete head they are given.
package h1

import (
	"errors"
	"net/http"
)

// ErrIncomplete means the buffer does not hold a whole head yet, and nothing seen so far is
// refused.
var ErrIncomplete = errors.New("h1: incomplete head")

// Error is a message refused by the rules, with the status a client is answered with.
type Error struct {
	// Status is 400 (a malformed or forbidden request), or 417 (an expectation other than
	// 100-continue).
	Status int
	// Reason is a short fixed token for the log, such as "obs-fold" or
	// "content-length-with-transfer-encoding".
	Reason string
}

// Error returns "h1: " followed by the reason.
func (e *Error) Error() string { return "h1: " + e.Reason }

// refuse returns an *Error with status 400 and reason.
func refuse(reason string) error { return &Error{Status: http.StatusBadRequest, Reason: reason} }

// The reasons of the errors ParseRequest and ParseResponse return. Each is a fixed string, so
// an error allocates nothing but itself.
const (
	reasonRequestLine      = "bad-request-line"
	reasonMethod           = "bad-method"
	reasonConnect          = "connect"
	reasonPRI              = "pri"
	reasonTarget           = "bad-target"
	reasonVersion          = "bad-version"
	reasonStatusLine       = "bad-status-line"
	reasonBareLF           = "bare-lf"
	reasonBareCR           = "bare-cr"
	reasonObsFold          = "obs-fold"
	reasonFieldName        = "bad-field-name"
	reasonFieldValue       = "bad-field-value"
	reasonNoHost           = "no-host"
	reasonDupHost          = "duplicate-host"
	reasonHost             = "bad-host"
	reasonLength           = "bad-content-length"
	reasonDifferingLength  = "differing-content-length"
	reasonLengthWithTE     = "content-length-with-transfer-encoding"
	reasonTransferEncoding = "transfer-encoding-other-than-chunked"
	reasonTEInHTTP10       = "transfer-encoding-in-http1.0"
	reasonDupUpgrade       = "duplicate-upgrade"
	reasonExpectation      = "expectation-other-than-100-continue"
	reasonChunkSize        = "bad-chunk-size"
	reasonChunkEnd         = "bad-chunk-end"
	reasonChunkLine        = "chunk-line-too-long"
	reasonTrailer          = "bad-trailer"
	reasonTrailerTooLarge  = "trailer-too-large"
)
