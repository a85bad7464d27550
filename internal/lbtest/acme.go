package lbtest

import (
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// StartDNS runs a TCP-only DNS server (Pebble's validation authority asks
// over TCP only) on 127.0.0.1 that answers A queries with 127.0.0.1, or
// addrs[name], and AAAA with nothing. It returns its address.
func StartDNS(t testing.TB, addrs map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype != dns.TypeA {
				continue
			}
			ip := "127.0.0.1"
			if v, ok := addrs[strings.TrimSuffix(q.Name, ".")]; ok {
				ip = v
			}
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
				A:   net.ParseIP(ip),
			})
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

// Pebble is an in-process ACME CA.
type Pebble struct {
	// DirURL is the ACME directory URL (tls.acme.directory_url).
	DirURL string
	// CAFile is the ACME API's certificate (tls.acme.ca_file).
	CAFile string
	// Root and Inter are the CA's root and intermediate certificates.
	Root, Inter *x509.Certificate
	// Roots holds Root: verify issued certificates against it.
	Roots *x509.CertPool
	// Store is the CA's database (e.g. to block a domain).
	Store *db.MemoryStore
	// Orders counts new orders; Requests counts every ACME API request.
	Orders, Requests atomic.Int64

	srv *httptest.Server
}

// Close stops the CA's API: from then on it is a CA that is down.
func (p *Pebble) Close() { p.srv.Close() }

// StartPebble starts a CA whose validation authority connects to httpPort
// (HTTP-01) and tlsPort (TLS-ALPN-01) of the names it resolves through
// dnsAddr; validity is the certificate lifetime (0: 90 days). It validates
// at once, with no nonce rejections and no authorization reuse. Set
// PEBBLE_LOG to see its log.
func StartPebble(t testing.TB, dnsAddr string, httpPort, tlsPort int, validity time.Duration) *Pebble {
	t.Helper()
	// Read by Pebble's constructors.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	if validity <= 0 {
		validity = 90 * 24 * time.Hour
	}
	var w io.Writer = io.Discard
	if os.Getenv("PEBBLE_LOG") != "" {
		w = os.Stderr
	}
	logger := log.New(w, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "default", ValidityPeriod: uint64(validity / time.Second)},
	})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	p := &Pebble{Store: store}
	api := front.Handler()
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Requests.Add(1)
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.Orders.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(p.srv.Close)
	p.DirURL = p.srv.URL + wfe.DirectoryPath
	p.CAFile = filepath.Join(t.TempDir(), "acme-api-ca.pem")
	apiPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(p.CAFile, apiPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p.Root = ParsePEMCert(t, authority.GetRootCert(0).PEM())
	p.Inter = ParsePEMCert(t, authority.GetIntermediateCert(0).PEM())
	p.Roots = x509.NewCertPool()
	p.Roots.AddCert(p.Root)
	return p
}
