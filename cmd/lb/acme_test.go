package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
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

// startTestDNS answers every A query with 127.0.0.1 over TCP (Pebble asks over TCP only).
func startTestDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.ParseIP("127.0.0.1"),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: handler, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// testCA is Pebble in-process.
type testCA struct {
	dirURL string
	caFile string // the ACME API's certificate, for tls.acme.ca_file
	roots  *x509.CertPool
}

func startTestCA(t *testing.T, httpPort, tlsPort int) *testCA {
	t.Helper()
	// Read by Pebble's constructors: validate at once, no nonce or authz games.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "default", ValidityPeriod: 90 * 24 * 3600},
	})
	validator := va.New(logger, httpPort, tlsPort, false, startTestDNS(t), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	srv.Config.ErrorLog = logger
	t.Cleanup(srv.Close)
	c := &testCA{dirURL: srv.URL + wfe.DirectoryPath, caFile: filepath.Join(t.TempDir(), "acme-ca.pem")}
	if err := os.WriteFile(c.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(authority.GetRootCert(0).PEM())
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	c.roots = x509.NewCertPool()
	c.roots.AddCert(root)
	return c
}

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
			ca := startTestCA(t, httpFwd.port(), tlsFwd.port())
			dir := t.TempDir()
			block := "http_listen: 127.0.0.1:0\ntls:\n  acme:\n    domains: [lb.test]\n" +
				"    directory_url: " + ca.dirURL + "\n    cache_dir: " + filepath.Join(dir, "acme") + "\n    ca_file: " + ca.caFile + "\n"
			l := startLB(t, lbConfig{dir: dir, backends: []*testBackend{b}, extra: block})
			if tt.tlsALPN {
				tlsFwd.target.Store(ptr(l.addrs["https"]))
			}
			httpFwd.target.Store(ptr(l.addrs["http"]))
			l.waitHealthy("app-1")

			hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
				DialContext:       (&net.Dialer{}).DialContext,
				TLSClientConfig:   &tls.Config{ServerName: "lb.test", RootCAs: ca.roots},
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
