package frontend

import (
	"context"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// TestHTTP2Server checks which server a Listener gives HTTP/2: lb's own for a proxy over
// TLS, net/http with NetHTTPOnly, none without TLS; and that an answer over lb's own carries
// the date and lower-case fields HTTP/2 wants.
func TestHTTP2Server(t *testing.T) {
	rec := lbtest.StartRecorder(t, nil)
	_, proxy := newTestProxy(t, rec.URL())
	pair, roots := testCertificate(t)
	for _, tc := range []struct {
		path servingPath
		want string
	}{
		{servingPath{"h2", false, true}, "lb"},
		{servingPath{"h2-nethttp", true, true}, "net/http"},
		{servingPath{"loop", false, false}, ""},
	} {
		t.Run(tc.path.name, func(t *testing.T) {
			rig := newPathRig(t, tc.path, proxy, pair, roots, "/who")
			l := rig.start(t)
			if got := l.HTTP2(); got != tc.want {
				t.Fatalf("HTTP2() = %q, want %q", got, tc.want)
			}
			resp := rig.get(t)
			if resp.StatusCode != 200 || resp.Header.Get("Date") == "" {
				t.Fatalf("answer %d with Date %q", resp.StatusCode, resp.Header.Get("Date"))
			}
		})
	}
}

// start starts a Listener from the rig's options, shut down when the test ends.
func (r *pathRig) start(t *testing.T) *Listener {
	t.Helper()
	l := New(r.opts)
	l.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Shutdown(ctx)
	})
	return l
}
