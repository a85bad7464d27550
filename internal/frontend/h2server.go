package frontend

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/balancer"
)

// h2Server is lb's own HTTP/2 server for one proxy Listener; shutdown sends every
// connection a GOAWAY and waits for its streams.
type h2Server struct {
	l       *Listener
	proxy   *balancer.Proxy
	dates   dateStrings
	closing atomic.Bool
	streams sync.Pool // *h2Stream

	// Workers: a goroutine that served a stream waits for the next one (up to
	// h2IdleWorkers of them wait), so that a stream seldom pays for a new goroutine and the
	// growth of its stack, which the forwarding loop's depth makes about a tenth of a
	// request's CPU.
	work        chan *h2Stream
	idleWorkers atomic.Int32
	stop        chan struct{} // closed once the Listener has shut down: waiting workers end
	stopOnce    sync.Once

	mu   sync.Mutex
	live map[*h2Conn]struct{}
}

// h2IdleWorkers bounds the goroutines of one Listener that wait for a stream.
const h2IdleWorkers = 128

func newH2Server(l *Listener) *h2Server {
	return &h2Server{l: l, proxy: l.opts.Proxy, live: map[*h2Conn]struct{}{},
		work: make(chan *h2Stream), stop: make(chan struct{})}
}

// release ends the waiting workers: the Listener has shut down.
func (s *h2Server) release() { s.stopOnce.Do(func() { close(s.stop) }) }

// start has a waiting worker serve st, or a new one.
func (s *h2Server) start(st *h2Stream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

// worker serves st, then the streams start hands it, until too many wait or the server stops.
func (s *h2Server) worker(st *h2Stream) {
	for {
		st.run()
		if s.idleWorkers.Add(1) > h2IdleWorkers {
			s.idleWorkers.Add(-1)
			return
		}
		select {
		case st = <-s.work:
			s.idleWorkers.Add(-1)
		case <-s.stop:
			s.idleWorkers.Add(-1)
			return
		}
	}
}

// serve serves one connection that negotiated h2, then closes it.
func (s *h2Server) serve(c net.Conn, headDeadline time.Time) {
	hc := &h2Conn{srv: s, c: c, peer: peerOf(c), set: s.l.settings(), streams: map[uint32]*h2Stream{}}
	s.mu.Lock()
	closing := s.closing.Load()
	if !closing {
		s.live[hc] = struct{}{}
	}
	s.mu.Unlock()
	if !closing {
		hc.serve(headDeadline)
		s.mu.Lock()
		delete(s.live, hc)
		s.mu.Unlock()
	}
	_ = c.Close()
}

// shutdown sends every connection a GOAWAY; each closes once its streams are done. It
// returns when none is left, or ctx is done.
func (s *h2Server) shutdown(done <-chan struct{}) bool {
	s.closing.Store(true)
	return waitDrained(done, func() int {
		s.mu.Lock()
		conns := make([]*h2Conn, 0, len(s.live))
		for hc := range s.live {
			conns = append(conns, hc)
		}
		s.mu.Unlock()
		for _, hc := range conns { // outside s.mu: a conn's serve takes it to leave
			hc.shutdown()
		}
		return len(conns)
	})
}

// closeAll closes every connection now, cutting its streams.
func (s *h2Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for hc := range s.live {
		_ = hc.c.Close()
	}
}
