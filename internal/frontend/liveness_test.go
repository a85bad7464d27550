package frontend

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
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
			opts := Options{Name: tc.name, Listener: ln, Proxy: proxy, NetHTTPOnly: tc.netHTTPOnly, Settings: testSettings}
			tr := &http.Transport{}
			url := "http://" + ln.Addr().String() + "/live"
			if tc.h2 {
				opts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}
				tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "lb.test"}, ForceAttemptHTTP2: true}
				url = "https://" + ln.Addr().String() + "/live"
			}
			defer tr.CloseIdleConnections()
			l := New(opts)
			if lv := l.Liveness(); lv != (Liveness{}) {
				t.Fatalf("before Start: %+v, want zero", lv)
			}
			l.Start()
			waitLiveness(t, l, func(lv Liveness) bool { return lv.Accepting && lv.WaitingInAccept })

			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for i := range 3 {
				resp, err := client.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if tc.h2 != (resp.ProtoMajor == 2) {
					t.Fatalf("answer over %s", resp.Proto)
				}
				want := uint64(i + 1)
				waitLiveness(t, l, func(lv Liveness) bool { return lv.Served == want && lv.Accepted == 1 })
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tr.CloseIdleConnections()
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
