package balancer

import (
	"net"

	"outrigger/internal/h1"
)

// Client is the client side of one request as the forwarding loop sees it: the front end
// that read the request writes the answer to its client through it. lb's HTTP/1.1
// connection loop and the net/http adapter (HTTP/2) are the two implementations.
//
// The loop calls Interim for each interim answer, then Start once with the head of the
// answer (a backend's, or lb's own error), then Write and Flush for the body and Finish at
// its end; or Abort when the backend broke the body off. After a 101 head, Upgrade hands
// over the client's connection for a tunnel. The last bytes may stay buffered until the
// front end flushes them after Forward returns, so that a client that has the whole answer
// sees the request counted and logged.
type Client interface {
	// Watch arranges for a.Abort to be called if the client goes away while the request
	// waits on its backend; it returns false if the client is gone already. Unwatch ends it.
	Watch(a Aborter) bool
	Unwatch()
	// Gone reports whether the client went away (a read or a write on its connection failed).
	Gone() bool

	// Interim passes on an interim answer (1xx other than 100 and 101).
	Interim(h *ResponseHead) error
	// Start begins the answer with its head; no retry is possible from here on.
	Start(h *ResponseHead) error
	// Write passes on body bytes.
	Write(p []byte) error
	// Flush sends what was written so far (a part of a stream).
	Flush() error
	// Finish ends the body, with the trailer fields of a chunked one.
	Finish(trailers []h1.Field) error
	// Abort cuts an answer the backend broke off, so that the client sees it incomplete.
	Abort()
	// Upgrade takes over the client connection after a 101 head went out, with the bytes
	// the client sent after its request that the front end had read already.
	Upgrade() (conn net.Conn, buffered []byte, err error)
}

// Aborter is what a Client stops when its client goes away: the backend connection of the
// attempt in progress.
type Aborter interface{ Abort() }

// ResponseHead is the head of an answer as a client may see it: the backend's fields that
// the table lets through, and what lb adds. Its slices are valid until the next call to the
// Client.
type ResponseHead struct {
	Code   int
	Fields []h1.Field // the backend's fields a client may see, in order
	// Length is the body's length, or -1 when it is not known in advance (the backend sends
	// it chunked, or until it closes).
	Length int64
	// Bodyless is set when no body follows whatever the fields say: an answer to HEAD, a
	// 1xx, a 204 or a 304 (Length then is what a GET would have had, or -1).
	Bodyless bool
	// Chunked is set when the backend sends the body chunked (its trailer fields follow).
	Chunked bool
	HasDate bool // the backend sent a Date field

	// What lb adds.
	RequestID string // X-Request-Id
	HSTS      string // Strict-Transport-Security, "" for none
}
