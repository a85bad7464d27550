package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"outrigger/internal/balancer"
)

// A frontend owns one listening socket. Its accept loop hands every
// connection to the current http.Server; a reload that changes the server
// settings (header limit, timeouts) starts a new http.Server for new
// connections while the old one keeps serving its own until shutdown, so no
// connection is dropped and no server field is written while in use.
type frontend struct {
	name    string
	ln      net.Listener
	limiter *connLimiter // nil: unlimited
	tlsConf *tls.Config  // nil: plain
	// hygiene wraps HTTP/1 connections in a hygieneConn (public listeners).
	hygiene bool
	// fast, if set, serves HTTP/1 connections first; what it leaves goes to net/http.
	fast     *balancer.FastPath
	maxHead  func() int
	logger   *slog.Logger
	handler  http.Handler
	settings func() serverSettings

	// stop ends TLS handshakes in progress at shutdown.
	stopCtx context.Context
	stop    context.CancelFunc

	mu      sync.Mutex
	cur     *slot
	all     []*slot
	closing bool
	wg      sync.WaitGroup // accept loop and handshakes
}

// serverSettings are the http.Server fields a reload may change.
type serverSettings struct {
	maxHeaderBytes    int
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
}

// slot is one http.Server and the listener it reads connections from.
type slot struct {
	srv      *http.Server
	ln       *chanListener
	settings serverSettings
	done     chan struct{} // closed when Serve returned
}

// tlsStateKey carries the TLS state of an HTTP/1 connection whose TLS the
// frontend terminated itself (see serveConn).
type tlsStateKey struct{}

func (f *frontend) newSlot(set serverSettings) *slot {
	s := &slot{ln: newChanListener(f.ln.Addr()), settings: set, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           withTLSState(f.handler),
		MaxHeaderBytes:    set.maxHeaderBytes,
		ReadHeaderTimeout: set.readHeaderTimeout,
		IdleTimeout:       set.idleTimeout,
		ErrorLog:          slog.NewLogLogger(f.logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if hc, ok := c.(*hygieneConn); ok && hc.tlsState != nil {
				return context.WithValue(ctx, tlsStateKey{}, hc.tlsState)
			}
			return ctx
		},
	}
	if f.tlsConf != nil {
		// The frontend does the handshake; this only lets net/http take
		// HTTP/2 connections (it looks at NegotiatedProtocol).
		s.srv.TLSConfig = f.tlsConf.Clone()
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.ln)
	}()
	return s
}

// withTLSState sets r.TLS for HTTP/1 requests over TLS that reached
// net/http as plain connections.
func withTLSState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if cs, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r.TLS = cs
			}
		}
		next.ServeHTTP(w, r)
	})
}

// start begins accepting.
func (f *frontend) start() {
	f.stopCtx, f.stop = context.WithCancel(context.Background())
	f.mu.Lock()
	f.cur = f.newSlot(f.settings())
	f.all = append(f.all, f.cur)
	f.mu.Unlock()
	f.wg.Add(1)
	go f.acceptLoop()
}

// refresh starts a new http.Server for new connections if the settings changed.
func (f *frontend) refresh() {
	set := f.settings()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing || f.cur == nil || f.cur.settings == set {
		return
	}
	old := f.cur
	f.cur = f.newSlot(set)
	f.all = append(f.all, f.cur)
	old.ln.Close() // its server keeps serving the connections it has
}

func (f *frontend) acceptLoop() {
	defer f.wg.Done()
	var ln net.Listener = f.ln
	if f.limiter != nil {
		ln = &limitListener{Listener: f.ln, l: f.limiter}
	}
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				f.logger.Warn("accept failed, retrying", "listener", f.name, "err", err.Error(), "delay", delay.String())
				time.Sleep(delay)
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				f.logger.Error("accept failed, listener stopped", "listener", f.name, "err", err.Error())
			}
			return
		}
		delay = 0
		if f.tlsConf == nil && f.fast == nil {
			f.deliver(f.wrapHTTP1(c, nil))
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if f.tlsConf == nil {
				f.serveHTTP1(c, nil)
				return
			}
			f.handshake(c)
		}()
	}
}

// handshake terminates TLS, then hands the connection on: HTTP/2 as the
// *tls.Conn net/http expects, HTTP/1 wrapped for the hygiene checks.
func (f *frontend) handshake(c net.Conn) {
	tc := tls.Server(c, f.tlsConf)
	timeout := f.settings().readHeaderTimeout
	ctx, cancel := context.WithTimeout(f.stopCtx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		f.logger.Debug("TLS handshake failed", "listener", f.name, "remote", c.RemoteAddr().String(), "err", err.Error())
		tc.Close()
		return
	}
	cs := tc.ConnectionState()
	switch cs.NegotiatedProtocol {
	case "h2":
		f.deliver(tc)
	case "acme-tls/1":
		tc.Close() // the handshake itself answered the challenge
	default:
		f.serveHTTP1(tc, &cs)
	}
}

// serveHTTP1 serves an HTTP/1 connection: on the fast path if there is one (in this
// goroutine), else, or for what the fast path leaves, on net/http.
func (f *frontend) serveHTTP1(c net.Conn, cs *tls.ConnectionState) {
	if f.fast == nil {
		f.deliver(f.wrapHTTP1(c, cs))
		return
	}
	f.fast.ServeConn(c, func(rest net.Conn) { f.deliver(f.wrapHTTP1(rest, cs)) })
}

func (f *frontend) wrapHTTP1(c net.Conn, cs *tls.ConnectionState) net.Conn {
	if !f.hygiene {
		return c
	}
	hc := newHygieneConn(c, f.maxHead(), func(reason string, status int) {
		f.logger.Info("request refused", "listener", f.name, "remote", c.RemoteAddr().String(), "reason", reason, "status", status)
	})
	hc.tlsState = cs
	return hc
}

// deliver hands c to the current server, following a reload's switch.
func (f *frontend) deliver(c net.Conn) {
	for {
		f.mu.Lock()
		cur, closing := f.cur, f.closing
		f.mu.Unlock()
		if closing {
			c.Close()
			return
		}
		if cur.ln.offer(c) {
			return
		}
	}
}

// shutdown stops accepting and lets every server finish its requests until
// ctx is done; then it closes what is left.
func (f *frontend) shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.closing = true
	all := append([]*slot(nil), f.all...)
	f.mu.Unlock()
	f.ln.Close()
	if f.stop != nil {
		f.stop()
	}
	if f.limiter != nil {
		f.limiter.close()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(all)+1)
	for i, s := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Shutdown(ctx); err != nil {
				errs[i] = err
				s.srv.Close()
			}
		}()
	}
	if f.fast != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.fast.Shutdown(ctx); err != nil {
				errs[len(all)] = err
				f.fast.Close()
			}
		}()
	}
	wg.Wait()
	f.wg.Wait()
	for _, s := range all {
		<-s.done
	}
	return errors.Join(errs...)
}

// chanListener is a net.Listener fed by a frontend.
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
func (l *chanListener) offer(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// connLimiter bounds open client connections; its limit can change at run time.
type connLimiter struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit int
	open  int
	done  bool
}

func newConnLimiter(limit int) *connLimiter {
	l := &connLimiter{limit: limit}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// setLimit changes the limit; waiting accepts proceed if it grew.
func (l *connLimiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
	l.cond.Broadcast()
}

// acquire waits for a free slot; false once the limiter is closed.
func (l *connLimiter) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.open >= l.limit && !l.done {
		l.cond.Wait()
	}
	if l.done {
		return false
	}
	l.open++
	return true
}

func (l *connLimiter) release() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
	l.cond.Signal()
}

func (l *connLimiter) close() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
	l.cond.Broadcast()
}

// limitListener takes a slot before each Accept (like netutil.LimitListener,
// with a limit a reload can change): beyond max_conns, accept waits.
type limitListener struct {
	net.Listener
	l *connLimiter
}

func (ll *limitListener) Accept() (net.Conn, error) {
	if !ll.l.acquire() {
		return nil, net.ErrClosed
	}
	c, err := ll.Listener.Accept()
	if err != nil {
		ll.l.release()
		return nil, err
	}
	return &limitedConn{Conn: c, release: ll.l.release}, nil
}

// limitedConn gives its slot back on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
