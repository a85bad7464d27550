package frontend

import (
	"context"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// Liveness, the seam a watchdog reads: the accept loop runs from Start until Shutdown and
// waits in Accept when idle; Accepted counts connections and Served the proxied requests of
// every internal path (lb's loop, net/http for HTTP/2, and net/http for HTTP/1 with
// NetHTTPOnly).
func TestLiveness(t *testing.T) {
	_, proxy := newTestProxy(t, lbtest.StartRecorder(t, nil).URL())
	pair, roots := testCertificate(t)
	for _, p := range servingPaths() {
		t.Run(p.name, func(t *testing.T) {
			rig := newPathRig(t, p, proxy, pair, roots, "/live")
			l := New(rig.opts)
			if lv := l.Liveness(); lv != (Liveness{}) {
				t.Fatalf("before Start: %+v, want zero", lv)
			}
			l.Start()
			waitLiveness(t, l, func(lv Liveness) bool { return lv.Accepting && lv.WaitingInAccept })

			for i := range 3 {
				rig.get(t)
				want := uint64(i + 1)
				waitLiveness(t, l, func(lv Liveness) bool { return lv.Served == want && lv.Accepted == 1 })
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rig.tr.CloseIdleConnections()
			if err := l.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if lv := l.Liveness(); lv.Accepting || lv.WaitingInAccept || lv.Served != 3 {
				t.Fatalf("after Shutdown: %+v, want not accepting, 3 served", lv)
			}
		})
	}
}

// waitLiveness waits until ok holds for l's Liveness (the loop counts a request after the
// client has its answer).
func waitLiveness(t *testing.T, l *Listener, ok func(Liveness) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(l.Liveness()) {
		if time.Now().After(deadline) {
			t.Fatalf("liveness %+v", l.Liveness())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
