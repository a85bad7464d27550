package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/lbconfig"
	"outrigger/internal/lbtest"
)

func TestFileCertReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, c1 := lbtest.SelfSigned(t, dir, 1, 24*time.Hour, "a.test", "www.a.test")
	logger, logs := newLogger()
	reg := prometheus.NewRegistry()
	src, err := New(context.Background(), lbconfig.TLS{CertFile: certFile, KeyFile: keyFile}, logger, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln := listen(t)
	serveHTTPS(t, ln, src, okHandler)
	addr := ln.Addr().String()

	roots := x509.NewCertPool()
	roots.AddCert(c1)
	resp, body, err := get(t, addr, "a.test", roots)
	if err != nil || body != "ok" {
		t.Fatalf("GET with file certificate: %v %q", err, body)
	}
	if got := resp.TLS.PeerCertificates[0]; !got.Equal(c1) {
		t.Fatalf("got serial %s, want 1", got.SerialNumber)
	}
	for _, n := range []string{"a.test", "www.a.test"} {
		if v, ok := gaugeValue(t, reg, n); !ok || v != float64(c1.NotAfter.Unix()) {
			t.Errorf("metric %s: got %v (present %v), want %d", n, v, ok, c1.NotAfter.Unix())
		}
	}
	if got := src.Certificates(); len(got) != 2 || got[0].Name != "a.test" || got[1].Name != "www.a.test" ||
		!got[0].NotAfter.Equal(c1.NotAfter) {
		t.Errorf("Certificates: %+v, want a.test and www.a.test until %v", got, c1.NotAfter)
	}

	// New files, then Reload: the new certificate is served, the old
	// names' series go away.
	_, _, c2 := lbtest.SelfSigned(t, dir, 2, 24*time.Hour, "b.test")
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got, err := handshake(addr, "b.test"); err != nil || !got.Equal(c2) {
		t.Fatalf("after reload: err %v, want serial 2", err)
	}
	if v, ok := gaugeValue(t, reg, "b.test"); !ok || v != float64(c2.NotAfter.Unix()) {
		t.Errorf("metric b.test: got %v (present %v), want %d", v, ok, c2.NotAfter.Unix())
	}
	if _, ok := gaugeValue(t, reg, "a.test"); ok {
		t.Error("metric still has a.test after reload")
	}
	if !logs.HasLine(`"msg":"certificate reloaded"`, `"serial":"2"`) {
		t.Errorf("no reload log line; logs:\n%s", logs)
	}

	// A broken file: Reload fails and the old certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = src.Reload()
	if err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("Reload of a broken file: got %v, want an error naming %s", err, certFile)
	}
	if got, err := handshake(addr, "b.test"); err != nil || !got.Equal(c2) {
		t.Fatalf("after failed reload: err %v, want serial 2 still", err)
	}
	if !logs.HasLine(`"level":"ERROR"`, "keeping the old one") {
		t.Errorf("no error line for the failed reload; logs:\n%s", logs)
	}
	// A key that does not match the certificate is refused too.
	_, _, _ = lbtest.SelfSigned(t, t.TempDir(), 3, 24*time.Hour, "c.test")
	other, _, _ := lbtest.SelfSigned(t, t.TempDir(), 4, 24*time.Hour, "d.test")
	data, _ := os.ReadFile(other)
	if err := os.WriteFile(certFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); err == nil {
		t.Fatal("Reload with a mismatched key succeeded, want error")
	}
	if got, err := handshake(addr, "b.test"); err != nil || !got.Equal(c2) {
		t.Fatalf("after mismatched reload: err %v, want serial 2 still", err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := lbtest.SelfSigned(t, dir, 1, 24*time.Hour, "a.test")
	tests := []struct {
		name string
		cfg  lbconfig.TLS
		want string
	}{
		{"neither", lbconfig.TLS{}, "no certificate source"},
		{"both", lbconfig.TLS{CertFile: certFile, KeyFile: keyFile, ACME: &lbconfig.ACME{Domains: []string{"a.test"}}}, "not both"},
		{"missing cert", lbconfig.TLS{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: keyFile}, "nope.pem"},
		{"key as cert", lbconfig.TLS{CertFile: keyFile, KeyFile: keyFile}, "load certificate"},
		{"acme no domains", lbconfig.TLS{ACME: &lbconfig.ACME{CacheDir: dir}}, "domains"},
		{"acme bad ca_file", lbconfig.TLS{ACME: &lbconfig.ACME{Domains: []string{"a.test"}, CacheDir: dir, CAFile: keyFile}}, "no PEM certificate"},
		{"acme missing ca_file", lbconfig.TLS{ACME: &lbconfig.ACME{Domains: []string{"a.test"}, CacheDir: dir, CAFile: filepath.Join(dir, "ca.pem")}}, "ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// The metric is registered once per registry.
	reg := prometheus.NewRegistry()
	cfg := lbconfig.TLS{CertFile: certFile, KeyFile: keyFile}
	if _, err := New(context.Background(), cfg, nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), cfg, nil, reg); err == nil || !strings.Contains(err.Error(), "register") {
		t.Errorf("second New on one registry: got %v, want a register error", err)
	}
}

func TestTLSConfig(t *testing.T) {
	certFile, keyFile, c := lbtest.SelfSigned(t, t.TempDir(), 1, 24*time.Hour, "a.test")
	src, err := New(context.Background(), lbconfig.TLS{CertFile: certFile, KeyFile: keyFile}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := src.TLSConfig()
	if got := strings.Join(cfg.NextProtos, ","); got != "h2,http/1.1" {
		t.Errorf("file mode NextProtos: got %s, want h2,http/1.1", got)
	}
	acmeSrc, err := New(context.Background(), lbconfig.TLS{ACME: &lbconfig.ACME{
		Domains: []string{"a.test"}, DirectoryURL: "https://127.0.0.1:1/dir", CacheDir: t.TempDir()}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(acmeSrc.TLSConfig().NextProtos, ","); got != "h2,http/1.1,acme-tls/1" {
		t.Errorf("ACME NextProtos: got %s, want h2,http/1.1,acme-tls/1", got)
	}

	ln := listen(t)
	serveHTTPS(t, ln, src, okHandler)
	roots := x509.NewCertPool()
	roots.AddCert(c)
	tests := []struct {
		name      string
		client    *tls.Config
		wantErr   bool
		wantProto string
	}{
		{"tls 1.3 h2", &tls.Config{NextProtos: []string{"h2", "http/1.1"}}, false, "h2"},
		{"http/1.1 only", &tls.Config{NextProtos: []string{"http/1.1"}}, false, "http/1.1"},
		{"tls 1.2", &tls.Config{MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}, false, "h2"},
		{"tls 1.1 refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, true, ""},
		{"tls 1.2 CBC only refused", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := tt.client
			cc.ServerName, cc.RootCAs = "a.test", roots
			conn, err := tls.Dial("tcp", ln.Addr().String(), cc)
			if tt.wantErr {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded, want failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().NegotiatedProtocol; got != tt.wantProto {
				t.Errorf("ALPN: got %q, want %q", got, tt.wantProto)
			}
		})
	}
}

func TestRedirect(t *testing.T) {
	certFile, keyFile, _ := lbtest.SelfSigned(t, t.TempDir(), 1, 24*time.Hour, "a.test")
	src, err := New(context.Background(), lbconfig.TLS{CertFile: certFile, KeyFile: keyFile}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		httpsAddr string
		method    string
		host      string
		target    string
		wantCode  int
		wantLoc   string
	}{
		{"path and query kept", ":443", "GET", "example.com", "/a/b?x=1&y=%20", 308, "https://example.com/a/b?x=1&y=%20"},
		{"http port dropped", "0.0.0.0:443", "GET", "example.com:80", "/", 308, "https://example.com/"},
		{"https port kept", ":8443", "GET", "example.com:8080", "/p?q", 308, "https://example.com:8443/p?q"},
		{"POST keeps method (308)", ":443", "POST", "example.com", "/form", 308, "https://example.com/form"},
		{"escaped path kept", ":443", "GET", "example.com", "/a%2Fb/%C3%A9", 308, "https://example.com/a%2Fb/%C3%A9"},
		{"double slash stays a path", ":443", "GET", "example.com", "//evil.test/x", 308, "https://example.com//evil.test/x"},
		{"ipv4", "127.0.0.1:8443", "GET", "127.0.0.1:8080", "/", 308, "https://127.0.0.1:8443/"},
		{"ipv6", ":443", "GET", "[::1]:8080", "/", 308, "https://[::1]/"},
		{"ipv6 with port", ":8443", "GET", "[::1]", "/", 308, "https://[::1]:8443/"},
		{"bad host", ":443", "GET", "exa mple.com", "/", 400, ""},
		{"host with underscore", ":443", "GET", "a_b.test", "/", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(src.HTTPHandler(tt.httpsAddr))
			defer srv.Close()
			req, err := http.NewRequest(tt.method, srv.URL+tt.target, strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || resp.Header.Get("Location") != tt.wantLoc {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.wantCode, tt.wantLoc)
			}
		})
	}
}

func TestHSTS(t *testing.T) {
	tests := []struct {
		name  string
		value string
		tls   bool
		want  string
	}{
		{"https", "max-age=31536000; includeSubDomains", true, "max-age=31536000; includeSubDomains"},
		{"plain http", "max-age=31536000", false, ""},
		{"unset", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			if tt.tls {
				srv = httptest.NewTLSServer(HSTS(tt.value, okHandler))
			} else {
				srv = httptest.NewServer(HSTS(tt.value, okHandler))
			}
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Strict-Transport-Security"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
