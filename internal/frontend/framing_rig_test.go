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
	pool, err := balancer.NewPool(balancer.PoolOptions{Registerer: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := pool.Add("rec", fr.rec.URL()); err != nil {
		tb.Fatal(err)
	}
	pool.SetHealthy("rec", true)
	fr.pool = pool
	proxy := balancer.NewProxy(pool, &balancer.RoundRobin{}, balancer.ProxyConfig{
		DialTimeout: 2 * time.Second, PerTryTimeout: 5 * time.Second, MaxRetries: 0, RetryBudget: 0.2, RetryBodyBytes: 64 << 10,
	}, nil, nil)
	certFile, keyFile, cert := lbtest.SelfSigned(tb, tb.TempDir(), 1, time.Hour, "lb.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	settings := func() Settings {
		return Settings{MaxHeaderBytes: 16 << 10, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
			BodyReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	}
	for _, path := range []string{"loop", "nethttp"} {
		for _, secure := range []bool{false, true} {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				tb.Fatal(err)
			}
			opts := Options{Name: path, Listener: ln, Proxy: proxy, NetHTTPOnly: path == "nethttp", Settings: settings}
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
