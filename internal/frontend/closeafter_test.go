package frontend

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// CloseAfterAnswer: while it says true, each answer is its connection's last on every
// internal path ("Connection: close" from lb's loop and from net/http's HTTP/1, a GOAWAY
// on HTTP/2), so the client's next request opens a new connection; while it says false,
// connections are kept alive.
func TestCloseAfterAnswer(t *testing.T) {
	_, proxy := newTestProxy(t, lbtest.StartRecorder(t, nil).URL())
	pair, roots := testCertificate(t)
	for _, p := range servingPaths() {
		t.Run(p.name, func(t *testing.T) {
			rig := newPathRig(t, p, proxy, pair, roots, "/close")
			var closing atomic.Bool
			rig.opts.CloseAfterAnswer = closing.Load
			l := New(rig.opts)
			l.Start()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				rig.tr.CloseIdleConnections()
				if err := l.Shutdown(ctx); err != nil {
					t.Error(err)
				}
			}()
			get := func() *http.Response { t.Helper(); return rig.get(t) }
			accepted := func(n uint64) {
				t.Helper()
				waitLiveness(t, l, func(lv Liveness) bool { return lv.Accepted == n })
			}

			if resp := get(); resp.Close {
				t.Errorf("kept-alive answer says Connection: close")
			}
			get()
			accepted(1)

			closing.Store(true)
			resp := get()
			if !p.h2 && !resp.Close {
				t.Errorf("answer while CloseAfterAnswer: no Connection: close (%v)", resp.Header)
			}
			get()
			accepted(2) // the second answer while closing went out on a new connection
			get()
			accepted(3)

			closing.Store(false)
			get()
			accepted(4)
			get()
			time.Sleep(50 * time.Millisecond)
			accepted(4) // kept alive again
		})
	}
}
