package frontend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/balancer"
	"outrigger/internal/lbtest"
)

// framingFront is one of the four ways into lb.
type framingFront struct {
	name string
	addr string
	tls  *tls.Config // the client's, nil for plain TCP
}

// framingRig is lb's front end four times over one proxy and one recording backend.
type framingRig struct {
	rec    *lbtest.Recorder
	pool   *balancer.Pool
	fronts []framingFront
}

func newFramingRig(tb testing.TB) *framingRig {
	tb.Helper()
	fr := &framingRig{rec: lbtest.StartRecorder(tb, nil)}
	var proxy *balancer.Proxy
	fr.pool, proxy = newTestProxy(tb, fr.rec.URL())
	pair, roots := testCertificate(tb)
	for _, path := range []string{"loop", "nethttp"} {
		for _, secure := range []bool{false, true} {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				tb.Fatal(err)
			}
			opts := Options{Name: path, Listener: ln, Proxy: proxy, NetHTTPOnly: path == "nethttp", Settings: testSettings}
			front := framingFront{name: path + "/plain", addr: ln.Addr().String()}
			if secure {
				opts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}
				front.name = path + "/tls"
				front.tls = &tls.Config{RootCAs: roots, ServerName: "lb.test", NextProtos: []string{"http/1.1"}}
			}
			l := New(opts)
			l.Start()
			tb.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = l.Shutdown(ctx)
			})
			fr.fronts = append(fr.fronts, front)
		}
	}
	return fr
}

// newTestProxy returns a pool of one healthy backend at url and a proxy over it that does
// not retry.
func newTestProxy(tb testing.TB, url string) (*balancer.Pool, *balancer.Proxy) {
	tb.Helper()
	pool, err := balancer.NewPool(balancer.PoolOptions{Registerer: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := pool.Add("rec", url); err != nil {
		tb.Fatal(err)
	}
	pool.SetHealthy("rec", true)
	proxy := balancer.NewProxy(pool, &balancer.RoundRobin{}, balancer.ProxyConfig{
		DialTimeout: 2 * time.Second, PerTryTimeout: 5 * time.Second, MaxRetries: 0, RetryBudget: 0.2, RetryBodyBytes: 64 << 10,
	}, nil, nil)
	return pool, proxy
}

// testCertificate returns a self-signed certificate for "lb.test" and the roots that trust it.
func testCertificate(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	certFile, keyFile, cert := lbtest.SelfSigned(tb, tb.TempDir(), 1, time.Hour, "lb.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return pair, roots
}

// testSettings are the limits of the front ends under test: generous, so that only what a
// test means to cut is cut.
func testSettings() Settings {
	return Settings{MaxHeaderBytes: 16 << 10, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		BodyReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
}
