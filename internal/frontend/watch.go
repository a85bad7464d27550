package frontend

import (
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/balancer"
)

// watchDelay is how long a request waits on its backend before a goroutine starts watching
// the client connection for a close (as net/http's background read, but only for the few
// requests that take this long).
const watchDelay = 50 * time.Millisecond

// watcher notices a client that goes away while its request waits on the backend, and
// aborts the backend exchange then.
type watcher struct {
	mu   sync.Mutex // orders an abort against the attempt switching backend connections
	cur  balancer.Aborter
	gone bool // the client went away (a read ended, or a write failed)

	timer *time.Timer
	armed bool
	stop  atomic.Bool
	done  chan struct{}
}

// clientGone records that the client went away, and aborts the exchange in progress.
func (w *watcher) clientGone() {
	w.mu.Lock()
	w.gone = true
	if w.cur != nil {
		w.cur.Abort()
	}
	w.mu.Unlock()
}

func (w *watcher) isGone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// Watch makes a the exchange to abort if the client goes away; false if it is gone already.
func (cc *conn) Watch(a balancer.Aborter) bool {
	cc.watch.mu.Lock()
	defer cc.watch.mu.Unlock()
	if cc.watch.gone {
		return false
	}
	cc.watch.cur = a
	return true
}

// Unwatch ends Watch.
func (cc *conn) Unwatch() {
	cc.watch.mu.Lock()
	cc.watch.cur = nil
	cc.watch.mu.Unlock()
}

// Gone reports whether the client went away.
func (cc *conn) Gone() bool { return cc.watch.isGone() }

// arm starts the timer after which the client connection is watched while the request waits
// on its backend (its body read to the end). With pipelined bytes already buffered there is
// nothing to watch (net/http does not either).
func (cc *conn) arm() {
	w := &cc.watch
	if w.armed || len(cc.rd.Buffered()) > 0 {
		return
	}
	w.stop.Store(false)
	if w.timer == nil {
		w.timer = time.AfterFunc(watchDelay, cc.watchClient)
	} else {
		w.timer.Reset(watchDelay)
	}
	w.armed = true
}

// disarm stops the watch: the timer if it has not fired, else the watch itself, which is
// unblocked with a past read deadline and waited for.
func (cc *conn) disarm() {
	w := &cc.watch
	if !w.armed {
		return
	}
	w.armed = false
	if w.timer.Stop() {
		return
	}
	w.stop.Store(true)
	_ = cc.c.SetReadDeadline(aLongTimeAgo)
	<-w.done
}

// watchClient runs (on the timer's goroutine) while the request waits on its backend: a read
// that ends in an error or EOF means the client went away. Bytes that arrive (a pipelined
// request) stay in the buffer for the loop.
func (cc *conn) watchClient() {
	defer func() { cc.watch.done <- struct{}{} }()
	_ = cc.c.SetReadDeadline(time.Time{})
	if cc.watch.stop.Load() {
		return
	}
	if err := cc.rd.Fill(cc.rd.Size()); err == nil || cc.watch.stop.Load() {
		return
	}
	cc.watch.clientGone()
}
