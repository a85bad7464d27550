package frontend

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// serverSettings are the http.Server fields a reload may change.
type serverSettings struct {
	maxHeaderBytes    int
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
}

func (l *Listener) serverSettings() serverSettings {
	s := l.settings()
	return serverSettings{maxHeaderBytes: s.MaxHeaderBytes, readHeaderTimeout: s.ReadHeaderTimeout, idleTimeout: s.IdleTimeout}
}

// slot is one http.Server and the listener it takes connections from.
type slot struct {
	srv      *http.Server
	ln       *chanListener
	settings serverSettings
	done     chan struct{} // closed when Serve returned
}

// connKey finds, in a request's context, the gate its HTTP/1 connection came through.
type connKey struct{}

// gateOf returns the gate of r's connection, or nil (HTTP/2).
func gateOf(r *http.Request) *gate {
	g, _ := r.Context().Value(connKey{}).(*gate)
	return g
}

func (l *Listener) newSlot(set serverSettings) *slot {
	s := &slot{ln: newChanListener(l.opts.Listener.Addr()), settings: set, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           withTLSState(l.handler),
		MaxHeaderBytes:    set.maxHeaderBytes,
		ReadHeaderTimeout: set.readHeaderTimeout,
		IdleTimeout:       set.idleTimeout,
		ErrorLog:          slog.NewLogLogger(l.opts.Logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if g, ok := c.(*gate); ok {
				return context.WithValue(ctx, connKey{}, g)
			}
			return ctx
		},
	}
	if l.opts.TLS != nil {
		// The Listener does the handshake; this only lets net/http take HTTP/2 connections
		// (it looks at NegotiatedProtocol).
		s.srv.TLSConfig = l.opts.TLS.Clone()
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.ln)
	}()
	return s
}

// withTLSState sets r.TLS for HTTP/1 requests over TLS that reached net/http through a gate.
func withTLSState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if g := gateOf(r); g != nil && g.tlsState != nil {
				r.TLS = g.tlsState
			}
		}
		next.ServeHTTP(w, r)
	})
}

// chanListener is a net.Listener fed by a Listener.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// offer hands c to Accept; false if the listener closed first.
func (cl *chanListener) offer(c net.Conn) bool {
	select {
	case cl.ch <- c:
		return true
	case <-cl.done:
		return false
	}
}

func (cl *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-cl.ch:
		return c, nil
	case <-cl.done:
		return nil, net.ErrClosed
	}
}

func (cl *chanListener) Close() error {
	cl.once.Do(func() { close(cl.done) })
	return nil
}

func (cl *chanListener) Addr() net.Addr { return cl.addr }
