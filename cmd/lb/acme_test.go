package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// forwarder is a TCP port whose connections go to a target set later:
// Pebble's validation authority needs a port before lb has bound its own.
type forwarder struct {
	ln     net.Listener
	target atomic.Pointer[string]
	wg     sync.WaitGroup
}

func startForwarder(t *testing.T) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				target := f.target.Load()
				if target == nil {
					return
				}
				u, err := net.DialTimeout("tcp", *target, 5*time.Second)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{})
				go func() {
					io.Copy(u, c)
					u.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				io.Copy(c, u)
				c.Close()
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *forwarder) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// TestServeACME gets a certificate through lb serve's own listeners: by
// TLS-ALPN-01 on the HTTPS listener, and by HTTP-01 on http_listen when
// TLS-ALPN-01 cannot reach lb.
func TestServeACME(t *testing.T) {
	for _, tt := range []struct {
		name    string
		tlsALPN bool
	}{
		{"tls-alpn-01", true},
		{"http-01", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app-1", nil)
			tlsFwd, httpFwd := startForwarder(t), startForwarder(t)
			ca := lbtest.StartPebble(t, lbtest.StartDNS(t, nil), httpFwd.port(), tlsFwd.port(), 0)
			dir := t.TempDir()
			block := "http_listen: 127.0.0.1:0\ntls:\n  acme:\n    domains: [lb.test]\n" +
				"    directory_url: " + ca.DirURL + "\n    cache_dir: " + filepath.Join(dir, "acme") + "\n    ca_file: " + ca.CAFile + "\n"
			l := startLB(t, lbConfig{dir: dir, backends: []*testBackend{b}, extra: block})
			if tt.tlsALPN {
				tlsFwd.target.Store(ptr(l.addrs["https"]))
			}
			httpFwd.target.Store(ptr(l.addrs["http"]))
			l.waitHealthy("app-1")

			hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
				DialContext:       (&net.Dialer{}).DialContext,
				TLSClientConfig:   &tls.Config{ServerName: "lb.test", RootCAs: ca.Roots},
				ForceAttemptHTTP2: true,
			}}
			_, port, _ := net.SplitHostPort(l.addrs["https"])
			req, _ := http.NewRequest("GET", "https://127.0.0.1:"+port+"/x", nil)
			req.Host = "lb.test"
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("HTTPS with an ACME certificate: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "app-1") {
				t.Errorf("got %d %q, want 200 from app-1", resp.StatusCode, body)
			}
			if got := resp.TLS.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "lb.test" {
				t.Errorf("certificate names %v, want [lb.test]", got)
			}
			if _, err := os.Stat(filepath.Join(dir, "acme", "lb.test")); err != nil {
				t.Errorf("certificate not cached: %v", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }
