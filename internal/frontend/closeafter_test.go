package frontend

import (
	"context"
	"crypto/tls"
	"io"
	"net"
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
	for _, tc := range []struct {
		name        string
		netHTTPOnly bool
		h2          bool
	}{
		{"loop", false, false},
		{"nethttp", true, false},
		{"h2", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var closing atomic.Bool
			opts := Options{Name: tc.name, Listener: ln, Proxy: proxy, NetHTTPOnly: tc.netHTTPOnly, Settings: testSettings,
				CloseAfterAnswer: closing.Load}
			tr := &http.Transport{}
			url := "http://" + ln.Addr().String() + "/close"
			if tc.h2 {
				opts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}
				tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "lb.test"}, ForceAttemptHTTP2: true}
				url = "https://" + ln.Addr().String() + "/close"
			}
			defer tr.CloseIdleConnections()
			l := New(opts)
			l.Start()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				tr.CloseIdleConnections()
				if err := l.Shutdown(ctx); err != nil {
					t.Error(err)
				}
			}()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			get := func() *http.Response {
				t.Helper()
				resp, err := client.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if tc.h2 != (resp.ProtoMajor == 2) {
					t.Fatalf("answer over %s", resp.Proto)
				}
				return resp
			}
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
			if !tc.h2 && !resp.Close {
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
