package frontend

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"outrigger/internal/balancer"
)

// servingPath is one of the internal paths a request can take through a Listener.
type servingPath struct {
	name        string
	netHTTPOnly bool // served by net/http (LB_FAST_PATH=off)
	h2          bool // HTTP/2 over TLS
}

// servingPaths lists every internal path: lb's own HTTP/1 loop, net/http for HTTP/1, and
// HTTP/2 as served by default and with NetHTTPOnly (LB_FAST_PATH=off).
func servingPaths() []servingPath {
	return []servingPath{{"loop", false, false}, {"nethttp", true, false}, {"h2", false, true}, {"h2-nethttp", true, true}}
}

// h2Paths lists the HTTP/2 paths of servingPaths.
func h2Paths() []servingPath {
	var ps []servingPath
	for _, p := range servingPaths() {
		if p.h2 {
			ps = append(ps, p)
		}
	}
	return ps
}

// pathRig is a Listener's options and a client that takes one serving path to it.
type pathRig struct {
	opts   Options
	tr     *http.Transport
	client *http.Client
	url    string
	h2     bool
}

// newPathRig listens on loopback and prepares options and a client for p that ask for
// path; the caller starts the Listener from rig.opts.
func newPathRig(t *testing.T, p servingPath, proxy *balancer.Proxy, pair tls.Certificate, roots *x509.CertPool, path string) *pathRig {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &pathRig{
		opts: Options{Name: p.name, Listener: ln, Proxy: proxy, NetHTTPOnly: p.netHTTPOnly, Settings: testSettings},
		tr:   &http.Transport{},
		url:  "http://" + ln.Addr().String() + path,
		h2:   p.h2,
	}
	if p.h2 {
		r.opts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}
		r.tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "lb.test"}, ForceAttemptHTTP2: true}
		r.url = "https://" + ln.Addr().String() + path
	}
	t.Cleanup(r.tr.CloseIdleConnections)
	r.client = &http.Client{Transport: r.tr, Timeout: 5 * time.Second}
	return r
}

// get asks the rig's URL, reads the answer to its end and checks it came over the rig's
// protocol.
func (r *pathRig) get(t *testing.T) *http.Response {
	t.Helper()
	resp, err := r.client.Get(r.url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if r.h2 != (resp.ProtoMajor == 2) {
		t.Fatalf("answer over %s", resp.Proto)
	}
	return resp
}
