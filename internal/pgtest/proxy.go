package pgtest

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy between a client and a PostgreSQL server, for tests of network
// failures that a stopped server cannot give: a host that vanished (Blackhole: connections
// accepted and held, bytes no longer forwarded, no reset, so the client sees silence until
// its own deadline), and a reply lost after the server committed (LoseReplies). It speaks
// the PostgreSQL protocol without TLS (sslmode=disable), which it reads message by message
// from the server.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu         sync.Mutex
	cond       *sync.Cond // signalled when blackholed is cleared or the proxy closes
	blackholed bool
	closed     bool
	lose       func(tag string) bool
	conns      map[net.Conn]bool
	wg         sync.WaitGroup
}

// NewProxy starts a proxy on 127.0.0.1 to target (host:port), closed at cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy listen: %v", err)
	}
	p := &Proxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// DSN returns dsn (a postgres:// URL) with its host and port replaced by the proxy's.
func (p *Proxy) DSN(dsn string) string {
	p.t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		p.t.Fatalf("pgtest: proxy DSN: %v", err)
	}
	u.Host = p.Addr()
	return u.String()
}

// Blackhole stops forwarding bytes in both directions, on open connections and on those
// accepted from now on, without closing anything: the peers see silence, as when a host
// vanishes from the network.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackholed = true
}

// Heal forwards again, held bytes first, as a network that comes back does.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackholed = false
	p.cond.Broadcast()
}

// LoseReplies makes the proxy swallow the server's reply to every statement whose
// CommandComplete tag (such as "INSERT 0 1") lose returns true for, and close that
// connection once the server said ReadyForQuery: the statement ran and committed, but the
// client never hears so (a lost acknowledgement). lose runs under the proxy's lock, so it
// may count; nil stops losing.
func (p *Proxy) LoseReplies(lose func(tag string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose = lose
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

// track adds c to the open connections; false if the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *Proxy) serve(client net.Conn) {
	defer p.untrack(client)
	if !p.track(client) || !p.waitOpen() {
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return // the client sees the connection closed, as with a refused one
	}
	defer p.untrack(server)
	if !p.track(server) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.copyRaw(server, client); done <- struct{}{} }()
	go func() { p.copyMessages(client, server); done <- struct{}{} }()
	<-done // one side ended: end both
	client.Close()
	server.Close()
	<-done
}

// waitOpen waits while the proxy is blackholed; false if it closed meanwhile.
func (p *Proxy) waitOpen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.blackholed && !p.closed {
		p.cond.Wait()
	}
	return !p.closed
}

// copyRaw forwards the client's bytes to the server, holding them while blackholed.
func (p *Proxy) copyRaw(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitOpen() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// copyMessages forwards the server's messages to the client one by one, holding them while
// blackholed, and swallows the replies LoseReplies asks for.
func (p *Proxy) copyMessages(dst io.Writer, src io.Reader) {
	var head [5]byte // type, then length (which counts itself)
	losing := false
	for {
		if _, err := io.ReadFull(src, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:]))
		if n < 4 {
			return
		}
		msg := make([]byte, 5+n-4)
		copy(msg, head[:])
		if _, err := io.ReadFull(src, msg[5:]); err != nil {
			return
		}
		switch head[0] {
		case 'C': // CommandComplete: the tag, NUL-terminated
			if !losing && p.shouldLose(string(trimNUL(msg[5:]))) {
				losing = true
			}
		case 'Z': // ReadyForQuery: the statement's transaction is over (committed)
			if losing {
				return // nothing of the reply was forwarded: close
			}
		}
		if losing {
			continue
		}
		if !p.waitOpen() {
			return
		}
		if _, err := dst.Write(msg); err != nil {
			return
		}
	}
}

func (p *Proxy) shouldLose(tag string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lose != nil && p.lose(tag)
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// TCPCluster starts a private cluster listening on a TCP port (see NewCluster), for tests
// that put a Proxy in front of it.
func TCPCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Port == 0 {
		opts.Port = FreePort(t)
	}
	return NewCluster(t, opts)
}
