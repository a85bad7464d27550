package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// frontCase is one way a client reaches lb's public listener: lb's own HTTP/1.1 loop (the
// fast path) or net/http (LB_FAST_PATH=off), over plain TCP or TLS.
type frontCase struct {
	name string
	fast bool
	tls  bool
}

var frontCases = []frontCase{
	{"fast/plain", true, false},
	{"fast/tls", true, true},
	{"nethttp/plain", false, false},
	{"nethttp/tls", false, true},
}

// forEachFrontCase runs test once per front case, each as a subtest.
func forEachFrontCase(t *testing.T, test func(t *testing.T, fc frontCase)) {
	t.Helper()
	for _, fc := range frontCases {
		t.Run(fc.name, func(t *testing.T) { test(t, fc) })
	}
}

// recordedLB is lb in front of one lbtest.Recorder ("rec").
type recordedLB struct {
	*runningLB
	rec   *lbtest.Recorder
	fc    frontCase
	addr  string
	roots *x509.CertPool
}

// startRecordedLB starts lb for fc with one recording backend answering with respond (nil:
// lbtest.EchoResponder). extra is more top-level YAML (limits, proxy...).
func startRecordedLB(t *testing.T, fc frontCase, respond lbtest.Responder, extra string) *recordedLB {
	t.Helper()
	rec := lbtest.StartRecorder(t, respond)
	dir := t.TempDir()
	c := lbConfig{dir: dir, urls: [][2]string{{"rec", rec.URL()}}, extra: extra}
	if !fc.fast {
		c.env = map[string]string{"LB_FAST_PATH": "off"}
	}
	r := &recordedLB{rec: rec, fc: fc}
	if fc.tls {
		certPath, keyPath, cert := lbtest.SelfSigned(t, dir, 1, 24*time.Hour, "lb.test")
		c.extra += "tls:\n  cert_file: " + certPath + "\n  key_file: " + keyPath + "\n  hsts: max-age=60\n"
		r.roots = x509.NewCertPool()
		r.roots.AddCert(cert)
	}
	r.runningLB = startLB(t, c)
	r.waitHealthy("rec")
	r.addr = r.addrs["http"]
	if fc.tls {
		r.addr = r.addrs["https"]
	}
	return r
}

// tlsConfig is the client TLS configuration for lb's certificate, offering protos by ALPN.
func (r *recordedLB) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: r.roots, ServerName: "lb.test", NextProtos: protos}
}

// dial opens a raw HTTP/1.1 client connection to lb (TLS with ALPN http/1.1 if the case says
// so); the connection closes when the test ends.
func (r *recordedLB) dial(t *testing.T) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.fc.tls {
		tc := tls.Client(c, r.tlsConfig("http/1.1"))
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		c = tc
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

// rawClient writes raw bytes to lb and reads its answers.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// send writes s; a write error (lb closed already) is returned, not fatal.
func (rc *rawClient) send(s string) error {
	_, err := io.WriteString(rc.c, s)
	return err
}

// response reads one response to a request with method, body included.
func (rc *rawClient) response(method string) (*http.Response, string, error) {
	res, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body), err
}

// mustResponse is response that fails the test on an error.
func (rc *rawClient) mustResponse(method string) (*http.Response, string) {
	rc.t.Helper()
	res, body, err := rc.response(method)
	if err != nil {
		rc.t.Fatalf("reading the response to %s: %v", method, err)
	}
	return res, body
}

// closed reports whether lb closed the connection: the next read ends with EOF (or a reset)
// within 5 s, with no byte.
func (rc *rawClient) closed() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.br.ReadByte()
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// expectRefused checks that lb answered status and closed the connection.
func (rc *rawClient) expectRefused(what string, status int) {
	rc.t.Helper()
	res, _, err := rc.response("GET")
	if err != nil {
		rc.t.Errorf("%s: want %d and a close, got no response: %v", what, status, err)
		return
	}
	if res.StatusCode != status {
		rc.t.Errorf("%s: got %d, want %d", what, res.StatusCode, status)
	}
	if !rc.closed() {
		rc.t.Errorf("%s: connection still open after the %d", what, res.StatusCode)
	}
}

// noneRecorded fails the test if the backend received a request whose target has prefix.
func (r *recordedLB) noneRecorded(t *testing.T, prefix string) {
	t.Helper()
	for _, q := range r.rec.Requests() {
		if strings.HasPrefix(q.Target, prefix) {
			t.Errorf("the backend received %s %s (body %q): lb forwarded what it should have refused", q.Method, q.Target, q.Body)
		}
	}
}
