package balancer

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/h1"
	"outrigger/internal/logging"
)

// FastSettings are the client-side limits of a FastPath, read once per request so that a
// reload applies from the next request on.
type FastSettings struct {
	// MaxHeaderBytes bounds a request head; a longer one is handed to net/http (which answers 431).
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds reading a request head (for the first request, from the start).
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection.
	IdleTimeout time.Duration
	// HSTS is the Strict-Transport-Security value sent on responses over TLS; "" sends none.
	HSTS string
}

// FastPathOptions configure a FastPath.
type FastPathOptions struct {
	// TLS tells that the connections were TLS-terminated (X-Forwarded-Proto https, HSTS).
	TLS bool
	// Settings returns the current limits.
	Settings func() FastSettings
	// Log writes each request's access line; nil writes none.
	Log *logging.RequestLog
}

// FastPath serves HTTP/1.1 client connections for a Proxy with a connection loop of its own:
// one goroutine per client connection reads a request head, forwards it over an idle
// connection of the backend's synchronous transport, and copies the answer back, without
// net/http's per-request machinery (request and header maps, contexts, ReverseProxy's clones,
// transport goroutines). It keeps the Proxy's guarantees: the same picking, exact drain,
// in-flight accounting until the body is copied, retries with the request replayed, per-try
// timeout, passive health, metrics, 499 for a client that went away and a broken response
// cut, and the access line of logging.Middleware.
//
// It takes only what it fully understands: requests that package h1 accepts (HTTP/1.1,
// origin-form, no Transfer-Encoding, Upgrade or Expect), with a body no larger than
// retry_body_bytes, to a pool of plain-HTTP backends. For anything else the connection is
// handed, with every byte read so far, to net/http through ServeConn's handoff, which
// serves it (and the rest of the connection) with the Proxy's ServeHTTP.
type FastPath struct {
	p        *Proxy
	opts     FastPathOptions
	ids      *logging.RequestIDs
	dates    h1.DateCache
	conns    sync.Pool // *fastConn with their buffers, between connections
	copyBufs sync.Pool // *[32 << 10]byte that large bodies are copied through

	mu      sync.Mutex // guards live
	live    map[*fastConn]struct{}
	closing atomic.Bool
}

// NewFastPath returns a FastPath over p.
func NewFastPath(p *Proxy, opts FastPathOptions) *FastPath {
	if opts.Settings == nil {
		opts.Settings = func() FastSettings { return FastSettings{MaxHeaderBytes: 64 << 10} }
	}
	return &FastPath{p: p, opts: opts, ids: logging.NewRequestIDs(), live: map[*fastConn]struct{}{}}
}

// ServeConn serves the requests of c until the client closes it, an error, a request that
// asks to close, or Shutdown; then it closes c. A request it does not handle is passed, with
// the connection and every byte read from it, to handoff, which owns c from then on.
func (f *FastPath) ServeConn(c net.Conn, handoff func(net.Conn)) {
	fc := f.newConn(c)
	if !f.track(fc) {
		_ = c.Close()
		f.putConn(fc)
		return
	}
	next := fc.serve()
	f.untrack(fc)
	if next != nil {
		handoff(next)
	} else {
		fc.closeClient()
	}
	f.putConn(fc)
}

// Shutdown stops taking requests: idle connections are closed at once, busy ones after the
// response in progress (sent with Connection: close). It returns when no connection is left
// or ctx is done; then the caller may Close what is left.
func (f *FastPath) Shutdown(ctx context.Context) error {
	f.closing.Store(true)
	wait := time.Millisecond
	for {
		f.mu.Lock()
		for fc := range f.live {
			fc.wakeIfIdle()
		}
		n := len(f.live)
		f.mu.Unlock()
		if n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Close closes every connection now, cutting the responses in progress.
func (f *FastPath) Close() {
	f.closing.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.live {
		fc.cut()
	}
}

// copyBuf returns a buffer for copying a large body; give it back to f.copyBufs.
func (f *FastPath) copyBuf() *[32 << 10]byte {
	if b, ok := f.copyBufs.Get().(*[32 << 10]byte); ok {
		return b
	}
	return new([32 << 10]byte)
}

// track registers a new connection; false once the FastPath is closing.
func (f *FastPath) track(fc *fastConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	f.live[fc] = struct{}{}
	return true
}

func (f *FastPath) untrack(fc *fastConn) {
	f.mu.Lock()
	delete(f.live, fc)
	f.mu.Unlock()
}
