package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/lbtest"
)

// testName is the name certificates are obtained for (SNI needs a dot).
const testName = "lb.test"

func newLogger() (*slog.Logger, *lbtest.SyncBuffer) {
	b := &lbtest.SyncBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// listen opens a TCP listener on 127.0.0.1:0, closed at cleanup.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func portNum(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deadPort returns a port that was bound and closed: connections are refused.
func deadPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := portNum(t, ln.Addr().String())
	ln.Close()
	return p
}

// serveHTTPS serves h over TLS on ln with the Source's configuration.
func serveHTTPS(t *testing.T, ln net.Listener, src *Source, h http.Handler) {
	t.Helper()
	srv := &http.Server{
		Handler:           src.HSTS(h),
		TLSConfig:         src.TLSConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
}

// serveHTTP serves h in plain HTTP on ln.
func serveHTTP(t *testing.T, ln net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// okHandler answers 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "ok")
})

// httpsClient returns a client that dials addr whatever the URL says, and
// verifies the server against roots with SNI sni.
func httpsClient(addr, sni string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{ServerName: sni, RootCAs: roots},
			ForceAttemptHTTP2: true,
		},
	}
}

// get fetches https://sni/ through addr and returns the response (body
// read and closed).
func get(t *testing.T, addr, sni string, roots *x509.CertPool) (*http.Response, string, error) {
	t.Helper()
	c := httpsClient(addr, sni, roots)
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + sni + "/")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// handshake does a bare TLS handshake to addr with SNI sni and returns the
// leaf the server sent (no verification).
func handshake(addr, sni string, protos ...string) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: protos})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// gaugeValue returns the value of lb_certificate_expiry_timestamp_seconds{name}.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "lb_certificate_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "name" && l.GetValue() == name {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func itoa(n int) string { return strconv.Itoa(n) }
