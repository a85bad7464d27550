package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

func TestServeTLS(t *testing.T) {
	b := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "app-1")
		io.WriteString(w, "proto="+r.Header.Get("X-Forwarded-Proto")+" xff="+r.Header.Get("X-Forwarded-For"))
	})
	dir := t.TempDir()
	certPath, keyPath, cert := lbtest.SelfSigned(t, dir, 1, 24*time.Hour, "lb.test")
	tlsBlock := "tls:\n  cert_file: " + certPath + "\n  key_file: " + keyPath + "\n  hsts: \"max-age=60\"\nhttp_listen: 127.0.0.1:0\n"
	l := startLB(t, lbConfig{dir: dir, backends: []*testBackend{b}, extra: tlsBlock})
	l.waitHealthy("app-1")

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, tt := range []struct {
		name      string
		protos    []string
		wantProto string
	}{
		{"h2", []string{"h2", "http/1.1"}, "HTTP/2.0"},
		{"http/1.1", []string{"http/1.1"}, "HTTP/1.1"},
	} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "lb.test", NextProtos: tt.protos},
			ForceAttemptHTTP2: tt.wantProto == "HTTP/2.0"}
		hc := &http.Client{Transport: tr}
		resp, err := hc.Get("https://" + l.addrs["https"] + "/x")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Proto != tt.wantProto {
			t.Errorf("%s: got %d %s, want 200 %s", tt.name, resp.StatusCode, resp.Proto, tt.wantProto)
		}
		if string(body) != "proto=https xff=127.0.0.1" {
			t.Errorf("%s: backend saw %q, want proto=https xff=127.0.0.1", tt.name, body)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=60" {
			t.Errorf("%s: HSTS %q, want max-age=60", tt.name, got)
		}
		if resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("%s: TLS version %x", tt.name, resp.TLS.Version)
		}
		tr.CloseIdleConnections()
	}

	// CL+TE over TLS (HTTP/1.1) is refused too.
	conn, err := tls.Dial("tcp", l.addrs["https"], &tls.Config{RootCAs: roots, ServerName: "lb.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 {
		t.Errorf("CL+TE over TLS: got %d, want 400", resp.StatusCode)
	}
	conn.Close()

	// http_listen redirects to https with path and query.
	nofollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = nofollow.Get("http://" + l.addrs["http"] + "/a/b?c=d")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := strings.Cut(l.addrs["https"], ":")
	if want := "https://127.0.0.1:" + port + "/a/b?c=d"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Errorf("http_listen: got %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// Reload re-reads the certificate files.
	certPath2, keyPath2, cert2 := lbtest.SelfSigned(t, t.TempDir(), 2, 24*time.Hour, "lb.test")
	for _, p := range [][2]string{{certPath2, certPath}, {keyPath2, keyPath}} {
		data, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	roots.AddCert(cert2)
	c2, err := tls.Dial("tcp", l.addrs["https"], &tls.Config{RootCAs: roots, ServerName: "lb.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := c2.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(cert2.SerialNumber) != 0 {
		t.Errorf("after reload: serial %v, want the new %v", got, cert2.SerialNumber)
	}
}

func TestServeAdminHTTPS(t *testing.T) {
	b := newBackend(t, "app-1", nil)
	dir := t.TempDir()
	certPath, keyPath, cert := lbtest.SelfSigned(t, dir, 3, 24*time.Hour, "lb-admin.test")
	l := startLB(t, lbConfig{dir: dir, backends: []*testBackend{b},
		adminPart: "  cert_file: " + certPath + "\n  key_file: " + keyPath + "\n"})
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, _ := http.NewRequest("GET", "https://"+l.addrs["admin"]+"/api/backends", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("admin over HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("admin over HTTPS: got %d", resp.StatusCode)
	}
	// The CLI trusts it with -ca-file.
	out, errOut, code := runCLI(t, nil, "backends", "-admin", "https://"+l.addrs["admin"], "-token-file", dir+"/token", "-ca-file", certPath)
	if code != 0 || !strings.Contains(out, "app-1") {
		t.Errorf("lb backends over HTTPS: exit %d %q %q", code, out, errOut)
	}
}
