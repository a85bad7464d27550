package balancer_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	. "outrigger/internal/balancer"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHTTPSBackend(t *testing.T) {
	protos := make(chan string, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		protos <- r.Proto
		_, _ = io.WriteString(w, "secure")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	// An https backend we cannot verify (reached as "localhost", a name its certificate does not
	// carry) fails the TLS handshake: that is a dial error (nothing was sent), so even a POST
	// goes on to the next backend.
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("request reached the backend whose certificate is not trusted")
	}))
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // the expected handshake error
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)

	reg := prometheus.NewRegistry()
	pool, err := NewPool(PoolOptions{Registerer: reg, TLSConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range []string{strings.Replace(untrusted.URL, "127.0.0.1", "localhost", 1), srv.URL} {
		name := []string{"bad", "good"}[i]
		if _, err := pool.Add(name, u); err != nil {
			t.Fatal(err)
		}
		pool.SetHealthy(name, true)
	}
	p := NewProxy(pool, &RoundRobin{}, defaultConfig(), nil, nil)
	for _, front := range []frontKind{frontLoop, frontNetHTTP} {
		t.Run(string(front), func(t *testing.T) { postToHTTPSBackend(t, p, reg, front, protos) })
	}
}

func postToHTTPSBackend(t *testing.T, p *Proxy, reg *prometheus.Registry, kind frontKind, protos chan string) {
	front := serveProxy(t, p, kind, nil)
	retriesBefore := Counter(t, reg, "lb_retries_total", map[string]string{"reason": "dial"})
	p.SetPolicy(&RoundRobin{}) // the untrusted backend first
	res, err := front.Client().Post(front.URL, "text/plain", strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "secure" {
		t.Fatalf("got %d %q, want 200 secure", res.StatusCode, body)
	}
	if got := <-protos; got != "HTTP/1.1" {
		t.Errorf("backend saw %s, want HTTP/1.1", got)
	}
	if got := Counter(t, reg, "lb_retries_total", map[string]string{"reason": "dial"}) - retriesBefore; got != 1 {
		t.Errorf("lb_retries_total{dial} = %v, want 1 (the failed handshake)", got)
	}
}
