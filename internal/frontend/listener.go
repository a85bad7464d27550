package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/balancer"
)

// Settings are the client-side limits a reload may change; a Listener reads them for each
// connection and each request.
type Settings struct {
	// MaxHeaderBytes bounds a request head: a longer one is answered 431.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds a request head, for the first one from the connection's
	// accept (so that it covers the TLS handshake), for later ones from their first byte.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection.
	IdleTimeout time.Duration
	// BodyReadTimeout bounds the gap between two reads of a request body.
	BodyReadTimeout time.Duration
	// WriteTimeout bounds a write to the client that does not progress.
	WriteTimeout time.Duration
	// HSTS is the Strict-Transport-Security value set on answers over TLS; "" sets none.
	HSTS string
}

// Options configure a Listener.
type Options struct {
	// Name names the listener in logs ("https", "http", "admin").
	Name string
	// Listener is the bound socket; the Listener owns it from Start on.
	Listener net.Listener
	// TLS, if set, terminates TLS (HTTP/2 and HTTP/1.1 by ALPN); nil serves plain HTTP/1.
	TLS *tls.Config
	// Limiter, if set, bounds the open connections (shared by the public listeners).
	Limiter *ConnLimiter
	// Settings returns the current limits.
	Settings func() Settings
	// Logger receives the listener's own lines (refused requests, accept errors).
	Logger *slog.Logger
	// Proxy, if set, makes this a proxy listener: every request is forwarded through it.
	// HTTP/1 requests go to lb's own connection loop, HTTP/2 ones to lb's own HTTP/2 server.
	Proxy *balancer.Proxy
	// NetHTTPOnly serves the requests of a proxy listener with net/http instead: HTTP/1
	// behind the gate that applies h1's rules, HTTP/2 on net/http's server (LB_FAST_PATH=off).
	NetHTTPOnly bool
	// Handler serves a listener that is not a proxy (the admin API, ACME answers and
	// redirects), behind the same gate.
	Handler http.Handler
	// CloseAfterAnswer, if set, is asked as each answer of a proxy listener starts: true
	// makes that answer the connection's last, "Connection: close" on HTTP/1 (lb's loop and
	// net/http alike), a GOAWAY on HTTP/2 (net/http ends the connection once its streams
	// are done). lb sets it while it is stopping and while no backend is healthy, so that
	// clients open new connections, which reach the other lb of a pair once the address
	// has moved, rather than keep one to an lb that is going away or cannot serve them.
	CloseAfterAnswer func() bool
}

// Listener is one listening socket and everything that serves its connections: the accept
// loop with the connection limit, TLS and ALPN, lb's HTTP/1.1 connection loop and HTTP/2
// server, and net/http servers for what they do not take (every request of a non-proxy
// listener or with NetHTTPOnly). A reload that changes the net/http settings starts a new
// http.Server for new connections while the old one keeps serving its own.
type Listener struct {
	opts    Options
	handler http.Handler // what net/http serves: the proxy adapter or opts.Handler
	loop    *loop        // lb's HTTP/1.1 connection loop; nil when net/http serves HTTP/1
	h2      *h2Server    // lb's HTTP/2 server; nil when net/http serves HTTP/2
	stopCtx context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup // accept loop and connection goroutines

	mu      sync.Mutex
	cur     *slot
	all     []*slot
	closing bool

	inAccept atomic.Bool   // the accept loop is waiting in Accept
	accepted atomic.Uint64 // connections accepted so far
	served   atomic.Uint64 // proxied requests finished, by lb's loop or net/http
	running  atomic.Bool   // the accept loop runs: from Start until it returns
}

// New returns a Listener for opts; Start begins serving.
func New(opts Options) *Listener {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{opts: opts, handler: opts.Handler}
	if opts.Proxy != nil {
		l.handler = &proxyHandler{l: l, proxy: opts.Proxy}
		if !opts.NetHTTPOnly {
			l.loop = newLoop(l)
			l.h2 = newH2Server(l)
		}
	}
	l.stopCtx, l.stop = context.WithCancel(context.Background())
	return l
}

// Name returns the listener's name.
func (l *Listener) Name() string { return l.opts.Name }

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.opts.Listener.Addr() }

// HTTP1 names what serves the listener's HTTP/1 requests: "lb" (lb's own connection loop)
// or "net/http" (a listener that is not a proxy, or NetHTTPOnly).
func (l *Listener) HTTP1() string {
	if l.loop != nil {
		return "lb"
	}
	return "net/http"
}

// HTTP2 names what serves the listener's HTTP/2 requests: "lb" (lb's own HTTP/2 server) or
// "net/http" (a listener that is not a proxy, or NetHTTPOnly); "" for a listener without TLS,
// which speaks no HTTP/2.
func (l *Listener) HTTP2() string {
	switch {
	case l.opts.TLS == nil:
		return ""
	case l.h2 != nil:
		return "lb"
	}
	return "net/http"
}

// Start begins accepting.
func (l *Listener) Start() {
	l.mu.Lock()
	l.cur = l.newSlot(l.serverSettings())
	l.all = append(l.all, l.cur)
	l.mu.Unlock()
	l.wg.Add(1)
	l.running.Store(true)
	go l.acceptLoop()
}

// Liveness is what a watchdog needs to know of a Listener's serving loops.
type Liveness struct {
	// Accepting is set while the accept loop runs (it is waiting in Accept, or handing a
	// connection on); it is false once the loop stopped (shutdown, or a failed listener).
	Accepting bool
	// WaitingInAccept is set while the accept loop waits for a connection: it is not stuck.
	WaitingInAccept bool
	// Full is set while an accept waits for a limits.max_conns slot (every one is held by
	// an open connection): only finished requests show progress then.
	Full bool
	// Accepted counts the connections accepted so far; Served the requests of a proxy
	// listener finished (answered, refused by the proxy or given up by the client), on lb's
	// loop or through net/http. Either moving means progress.
	Accepted, Served uint64
}

// Liveness reports whether the accept loop and the connection handling are alive.
func (l *Listener) Liveness() Liveness {
	return Liveness{Accepting: l.running.Load(), WaitingInAccept: l.inAccept.Load(),
		Full:     l.opts.Limiter != nil && l.opts.Limiter.Full(),
		Accepted: l.accepted.Load(), Served: l.served.Load()}
}

func (l *Listener) settings() Settings { return l.opts.Settings() }

// closeAfterAnswer reports whether an answer starting now should close its connection.
func (l *Listener) closeAfterAnswer() bool {
	return l.opts.CloseAfterAnswer != nil && l.opts.CloseAfterAnswer()
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	defer l.running.Store(false)
	var ln net.Listener = l.opts.Listener
	if l.opts.Limiter != nil {
		ln = &limitListener{Listener: ln, l: l.opts.Limiter}
	}
	var delay time.Duration
	for {
		l.inAccept.Store(true)
		c, err := ln.Accept()
		l.inAccept.Store(false)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.opts.Logger.Warn("accept failed, retrying", "listener", l.opts.Name, "err", err.Error(), "delay", delay.String())
				time.Sleep(delay)
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				l.opts.Logger.Error("accept failed, listener stopped", "listener", l.opts.Name, "err", err.Error())
			}
			return
		}
		delay = 0
		l.accepted.Add(1)
		// The first head's deadline runs from the accept, over a TLS handshake too.
		headDeadline := time.Now().Add(l.settings().ReadHeaderTimeout)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serveConn(c, headDeadline)
		}()
	}
}

// serveConn terminates TLS if the listener does, then serves the connection: HTTP/2 on lb's
// HTTP/2 server or net/http, HTTP/1 on lb's loop or behind the gate on net/http.
func (l *Listener) serveConn(c net.Conn, headDeadline time.Time) {
	if l.opts.TLS == nil {
		l.serveHTTP1(c, nil, headDeadline)
		return
	}
	tc := tls.Server(c, l.opts.TLS)
	ctx, cancel := context.WithDeadline(l.stopCtx, headDeadline)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.opts.Logger.Debug("TLS handshake failed", "listener", l.opts.Name, "remote", c.RemoteAddr().String(), "err", err.Error())
		_ = tc.Close()
		return
	}
	cs := tc.ConnectionState()
	switch cs.NegotiatedProtocol {
	case "h2":
		if l.h2 != nil {
			l.h2.serve(tc, headDeadline)
			return
		}
		l.deliver(tc)
	case "acme-tls/1":
		_ = tc.Close() // the handshake itself answered the challenge
	default:
		l.serveHTTP1(tc, &cs, headDeadline)
	}
}

// serveHTTP1 serves an HTTP/1 connection on lb's loop, or hands it to net/http behind the gate.
func (l *Listener) serveHTTP1(c net.Conn, cs *tls.ConnectionState, headDeadline time.Time) {
	if l.loop != nil {
		l.loop.serve(c, cs != nil, headDeadline)
		return
	}
	l.deliver(newGate(c, cs, headDeadline, l.settings().MaxHeaderBytes, func(reason string, status int) {
		l.refused(c, reason, status)
	}))
}

// refused logs a request refused by h1's rules.
func (l *Listener) refused(c net.Conn, reason string, status int) {
	l.opts.Logger.Info("request refused", "listener", l.opts.Name, "remote", c.RemoteAddr().String(), "reason", reason, "status", status)
}

// Refresh starts a new http.Server for new connections if the net/http settings changed (a
// reload); lb's loop reads the settings per request and needs nothing.
func (l *Listener) Refresh() {
	set := l.serverSettings()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing || l.cur == nil || l.cur.settings == set {
		return
	}
	old := l.cur
	l.cur = l.newSlot(set)
	l.all = append(l.all, l.cur)
	_ = old.ln.Close() // its server keeps serving the connections it has
}

// deliver hands c to the current http.Server, following a reload's switch.
func (l *Listener) deliver(c net.Conn) {
	for {
		l.mu.Lock()
		cur, closing := l.cur, l.closing
		l.mu.Unlock()
		if closing {
			_ = c.Close()
			return
		}
		if cur.ln.offer(c) {
			return
		}
	}
}

// Shutdown stops accepting and lets every connection finish its request in progress until
// ctx is done; then it closes what is left.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	all := append([]*slot(nil), l.all...)
	l.mu.Unlock()
	_ = l.opts.Listener.Close()
	l.stop()
	if l.opts.Limiter != nil {
		l.opts.Limiter.Close() // an accept waiting for a slot stops too
	}
	var wg sync.WaitGroup
	errs := make([]error, len(all)+2)
	for i, s := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Shutdown(ctx); err != nil {
				errs[i] = err
				_ = s.srv.Close()
			}
		}()
	}
	if l.loop != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.loop.shutdown(ctx); err != nil {
				errs[len(all)] = err
				l.loop.closeAll()
			}
		}()
	}
	if l.h2 != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !l.h2.shutdown(ctx.Done()) {
				errs[len(all)+1] = ctx.Err()
				l.h2.closeAll()
			}
		}()
	}
	wg.Wait()
	l.wg.Wait()
	if l.h2 != nil {
		l.h2.release() // no stream comes any more: the waiting workers end
	}
	for _, s := range all {
		<-s.done
	}
	return errors.Join(errs...)
}
