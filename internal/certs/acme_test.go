package certs

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/lbconfig"
	"outrigger/internal/lbtest"
	"outrigger/internal/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(m))
}

// acmeLB is an lb's TLS side under test: a Source on its own listeners.
type acmeLB struct {
	src   *Source
	https string // HTTPS listener address
	logs  *lbtest.SyncBuffer
	reg   *prometheus.Registry
}

// acmeConfig is the tls block for domains at the CA p, caching in dir.
func acmeConfig(p *lbtest.Pebble, dir string, domains ...string) lbconfig.TLS {
	return lbconfig.TLS{
		ACME: &lbconfig.ACME{
			Domains:      domains,
			Email:        "ops@example.com",
			DirectoryURL: p.DirURL,
			CacheDir:     dir,
			CAFile:       p.CAFile,
		},
		HSTS: "max-age=60",
	}
}

// startACMELB builds a Source from cfg and serves it on httpsLn, and its
// HTTP handler on httpLn when that is not nil.
func startACMELB(t *testing.T, cfg lbconfig.TLS, httpsLn, httpLn net.Listener) *acmeLB {
	t.Helper()
	logger, logs := newLogger()
	reg := prometheus.NewRegistry()
	src, err := New(context.Background(), cfg, logger, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(src.Close)
	serveHTTPS(t, httpsLn, src, okHandler)
	if httpLn != nil {
		serveHTTP(t, httpLn, src.HTTPHandler(httpsLn.Addr().String()))
	}
	return &acmeLB{src: src, https: httpsLn.Addr().String(), logs: logs, reg: reg}
}

// checkChain checks a response was served with a certificate for name
// issued by the CA p: chain verified with SNI, intermediate as issued.
func checkChain(t *testing.T, resp *http.Response, p *lbtest.Pebble, name string) *x509.Certificate {
	t.Helper()
	if resp.TLS == nil {
		t.Fatal("response was not over TLS")
	}
	certs := resp.TLS.PeerCertificates
	if len(certs) < 2 {
		t.Fatalf("got %d certificates, want leaf + intermediate", len(certs))
	}
	leaf := certs[0]
	if got := leaf.DNSNames; len(got) != 1 || got[0] != name {
		t.Errorf("leaf names: got %q, want [%s]", got, name)
	}
	if !certs[1].Equal(p.Inter) {
		t.Errorf("got intermediate %q, want Pebble's %q", certs[1].Subject, p.Inter.Subject)
	}
	inter := x509.NewCertPool()
	inter.AddCert(p.Inter)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: p.Roots, Intermediates: inter}); err != nil {
		t.Errorf("leaf does not verify against Pebble's root: %v", err)
	}
	return leaf
}

func TestACMETLSALPN01ThenRestartFromCache(t *testing.T) {
	dnsAddr := lbtest.StartDNS(t, nil)
	httpsLn := listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, httpsLn.Addr().String()), 0)
	cacheDir := t.TempDir()
	cfg := acmeConfig(p, cacheDir, testName)
	lb := startACMELB(t, cfg, httpsLn, nil)
	// The name has a series before any handshake: 0, no certificate yet.
	if got, ok := gaugeValue(t, lb.reg, testName); !ok || got != 0 {
		t.Errorf("expiry metric before issuance: got %v (present %v), want 0", got, ok)
	}
	if got := lb.src.Certificates(); len(got) != 1 || got[0].Name != testName || !got[0].NotAfter.IsZero() {
		t.Errorf("Certificates before issuance: %+v, want %s with no expiry", got, testName)
	}

	start := time.Now()
	resp, body, err := get(t, lb.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("first HTTPS request (issuance in the handshake): %v\nlogs:\n%s", err, lb.logs)
	}
	t.Logf("issued and served in %s", time.Since(start))
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("got %s, want HTTP/2.0 by ALPN", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=60" {
		t.Errorf("HSTS: got %q, want max-age=60", got)
	}
	leaf := checkChain(t, resp, p, testName)
	if got := p.Orders.Load(); got != 1 {
		t.Errorf("got %d orders, want 1", got)
	}
	if got, ok := gaugeValue(t, lb.reg, testName); !ok || got != float64(leaf.NotAfter.Unix()) {
		t.Errorf("expiry metric: got %v (present %v), want %d", got, ok, leaf.NotAfter.Unix())
	}
	if got := lb.src.Certificates(); len(got) != 1 || !got[0].NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("Certificates after issuance: %+v, want %s until %v", got, testName, leaf.NotAfter)
	}
	if !lb.logs.HasLine(`"msg":"certificate issued"`, `"name":"lb.test"`, leaf.SerialNumber.Text(16)) {
		t.Errorf("no issuance log line; logs:\n%s", lb.logs)
	}

	// Later handshakes use the certificate in memory.
	if again, err := handshake(lb.https, testName); err != nil || !again.Equal(leaf) {
		t.Errorf("second handshake: got err %v, same leaf %v; want the same leaf", err, err == nil && again.Equal(leaf))
	}
	// No SNI: the first domain's certificate.
	if noSNI, err := handshake(lb.https, ""); err != nil || !noSNI.Equal(leaf) {
		t.Errorf("handshake without SNI: err %v; want the lb.test certificate", err)
	}

	// A name outside the policy fails at once, without asking the CA.
	before := p.Requests.Load()
	start = time.Now()
	_, err = handshake(lb.https, "other.test")
	if err == nil {
		t.Fatal("handshake for other.test succeeded, want failure")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusal took %s, want fast", d)
	}
	if _, err := handshake(lb.https, "other.test", "acme-tls/1"); err == nil {
		t.Error("acme-tls/1 handshake for other.test succeeded, want failure")
	}
	if got := p.Requests.Load(); got != before {
		t.Errorf("CA got %d requests for a name outside the policy, want 0", got-before)
	}
	if !lb.logs.HasLine(`"msg":"handshake refused: name not in tls.acme.domains"`, `"name":"other.test"`) {
		t.Errorf("no log line for the refused name; logs:\n%s", lb.logs)
	}
	if _, err := handshake(lb.https, "third.test"); err == nil {
		t.Error("handshake for third.test succeeded, want failure")
	}
	if n := strings.Count(lb.logs.String(), "handshake refused"); n != 1 {
		t.Errorf("got %d refusal lines for 2 refusals, want 1 (rate-limited)", n)
	}
	if _, ok := gaugeValue(t, lb.reg, "other.test"); ok {
		t.Error("metric has a series for other.test, want none")
	}

	// Restart: a new Source on the same cache dir serves the cached
	// certificate while the CA is down.
	p.Close()
	lb2 := startACMELB(t, cfg, listen(t), nil)
	// Before its first handshake, the restarted lb exports the cached certificate's expiry.
	if got, ok := gaugeValue(t, lb2.reg, testName); !ok || got != float64(leaf.NotAfter.Unix()) {
		t.Errorf("restarted expiry metric before a handshake: got %v (present %v), want %d", got, ok, leaf.NotAfter.Unix())
	}
	if got := lb2.src.Certificates(); len(got) != 1 || !got[0].NotAfter.Equal(leaf.NotAfter.Truncate(time.Second)) {
		t.Errorf("restarted Certificates before a handshake: %+v, want %s until %v", got, testName, leaf.NotAfter)
	}
	start = time.Now()
	resp, _, err = get(t, lb2.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("restarted lb with the CA down: %v\nlogs:\n%s", err, lb2.logs)
	}
	t.Logf("restarted lb served from cache in %s", time.Since(start))
	if got := resp.TLS.PeerCertificates[0]; !got.Equal(leaf) {
		t.Errorf("restarted lb served serial %s, want the cached %s", got.SerialNumber, leaf.SerialNumber)
	}
	checkChain(t, resp, p, testName)
	if !lb2.logs.HasLine(`"msg":"certificate loaded from cache"`, `"name":"lb.test"`) {
		t.Errorf("no cache log line; logs:\n%s", lb2.logs)
	}
	if got, ok := gaugeValue(t, lb2.reg, testName); !ok || got != float64(leaf.NotAfter.Unix()) {
		t.Errorf("restarted expiry metric: got %v (present %v), want %d", got, ok, leaf.NotAfter.Unix())
	}
}

func TestACMEHTTP01(t *testing.T) {
	dnsAddr := lbtest.StartDNS(t, nil)
	httpsLn, httpLn := listen(t), listen(t)
	// TLS-ALPN-01 probes go to a dead port, so only HTTP-01 can succeed.
	p := lbtest.StartPebble(t, dnsAddr, portNum(t, httpLn.Addr().String()), deadPort(t), 0)
	lb := startACMELB(t, acmeConfig(p, t.TempDir(), testName), httpsLn, httpLn)

	resp, body, err := get(t, lb.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("HTTPS request: %v\nlogs:\n%s", err, lb.logs)
	}
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
	}
	checkChain(t, resp, p, testName)
	// autocert tries tls-alpn-01 first, then places a second order for http-01.
	if got := p.Orders.Load(); got != 2 {
		t.Errorf("got %d orders, want 2 (tls-alpn-01 failed, http-01 passed)", got)
	}
	if !lb.logs.HasLine(`"msg":"acme challenge failed"`, `"name":"lb.test"`, `"challenge":"tls-alpn-01"`, `"reason":`) {
		t.Errorf("the failed tls-alpn-01 challenge was not logged with the CA's reason; logs:\n%s", lb.logs)
	}

	// Everything that is not a challenge on the HTTP listener is redirected.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := c.Get("http://" + httpLn.Addr().String() + "/a/b?c=d")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	want := "https://127.0.0.1:" + strings.Split(lb.https, ":")[1] + "/a/b?c=d"
	if r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != want {
		t.Errorf("got %d %q, want 308 %q", r.StatusCode, r.Header.Get("Location"), want)
	}
	// An unknown challenge token is a 404, not a redirect.
	// A challenge request is checked against the policy (port stripped).
	for _, tt := range []struct {
		host string
		want int
	}{
		{"lb.test:" + strings.Split(httpLn.Addr().String(), ":")[1], http.StatusNotFound},
		{"other.test", http.StatusForbidden},
	} {
		req, _ := http.NewRequest("GET", "http://"+httpLn.Addr().String()+"/.well-known/acme-challenge/nope", nil)
		req.Host = tt.host
		r, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != tt.want {
			t.Errorf("unknown token for Host %s: got %d, want %d", tt.host, r.StatusCode, tt.want)
		}
	}
}

func TestACMEFailuresStayPerName(t *testing.T) {
	// bad.test resolves to 127.0.0.2, where the lb does not listen: its
	// challenges fail. The CA refuses to issue for blocked.test. lb.test
	// is issued normally all the same.
	dnsAddr := lbtest.StartDNS(t, map[string]string{"bad.test": "127.0.0.2"})
	httpsLn := listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, httpsLn.Addr().String()), 0)
	if err := p.Store.AddBlockedDomain("blocked.test"); err != nil {
		t.Fatal(err)
	}
	lb := startACMELB(t, acmeConfig(p, t.TempDir(), testName, "bad.test", "blocked.test"), httpsLn, nil)

	if _, err := handshake(lb.https, "blocked.test"); err == nil {
		t.Fatal("handshake for blocked.test succeeded, want failure")
	}
	if !lb.logs.HasLine(`"msg":"acme error"`, `rejectedIdentifier`, "forbidden by policy") {
		t.Errorf("the CA's refusal was not logged with its reason; logs:\n%s", lb.logs)
	}
	if !lb.logs.HasLine(`"msg":"certificate failed"`, `"name":"blocked.test"`) {
		t.Errorf("no failure line for blocked.test; logs:\n%s", lb.logs)
	}

	if _, err := handshake(lb.https, "bad.test"); err == nil {
		t.Fatal("handshake for bad.test succeeded, want failure")
	}
	if !lb.logs.HasLine(`"msg":"certificate failed"`, `"name":"bad.test"`) {
		t.Errorf("no failure line for bad.test; logs:\n%s", lb.logs)
	}
	if !lb.logs.HasLine(`"msg":"acme challenge failed"`, `"name":"bad.test"`, `"reason":"`) {
		t.Errorf("no CA reason logged for bad.test; logs:\n%s", lb.logs)
	}
	resp, _, err := get(t, lb.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("lb.test after bad.test failed: %v\nlogs:\n%s", err, lb.logs)
	}
	checkChain(t, resp, p, testName)
	// The failure is remembered (autocert: 1 minute) and logged once.
	if _, err := handshake(lb.https, "bad.test"); err == nil {
		t.Fatal("second handshake for bad.test succeeded, want failure")
	}
	if n := strings.Count(lb.logs.String(), `"msg":"certificate failed","name":"bad.test"`); n != 1 {
		t.Errorf("got %d failure lines for bad.test, want 1 (repeats are rate-limited)", n)
	}
}

func TestACMECADown(t *testing.T) {
	dir := "https://127.0.0.1:" + itoa(deadPort(t)) + "/dir"
	cfg := lbconfig.TLS{ACME: &lbconfig.ACME{Domains: []string{testName, "Second.test"}, DirectoryURL: dir, CacheDir: t.TempDir()}}
	lb := startACMELB(t, cfg, listen(t), nil)
	// A name never issued has a series from the start (0), so an alert can see it.
	for _, name := range []string{testName, "second.test"} {
		if got, ok := gaugeValue(t, lb.reg, name); !ok || got != 0 {
			t.Errorf("expiry metric for %s with no certificate: got %v (present %v), want 0", name, got, ok)
		}
	}
	start := time.Now()
	if _, err := handshake(lb.https, testName); err == nil {
		t.Fatal("handshake succeeded with the CA down, want failure")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failure took %s, want it quick", d)
	}
	if !lb.logs.HasLine(`"msg":"acme request failed"`, "connection refused") {
		t.Errorf("no log line about the CA being down; logs:\n%s", lb.logs)
	}
	if !lb.logs.HasLine(`"msg":"certificate failed"`, `"name":"lb.test"`) {
		t.Errorf("no failure line for lb.test; logs:\n%s", lb.logs)
	}
}

func TestACMERenewal(t *testing.T) {
	dnsAddr := lbtest.StartDNS(t, nil)
	httpsLn := listen(t)
	p := lbtest.StartPebble(t, dnsAddr, deadPort(t), portNum(t, httpsLn.Addr().String()), 20*time.Second)
	cfg := acmeConfig(p, t.TempDir(), testName)
	cfg.ACME.RenewBefore = 15 * time.Second
	lb := startACMELB(t, cfg, httpsLn, nil)

	resp, _, err := get(t, lb.https, testName, p.Roots)
	if err != nil {
		t.Fatalf("first request: %v\nlogs:\n%s", err, lb.logs)
	}
	first := checkChain(t, resp, p, testName)
	var renewed *x509.Certificate
	lbtest.WaitFor(t, 30*time.Second, "a renewed certificate to be served", func() bool {
		leaf, err := handshake(lb.https, testName)
		if err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			renewed = leaf
			return true
		}
		return false
	})
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed NotAfter %s is not after the first %s", renewed.NotAfter, first.NotAfter)
	}
	if !lb.logs.HasLine(`"msg":"certificate renewed"`, `"name":"lb.test"`) {
		t.Errorf("no renewal log line; logs:\n%s", lb.logs)
	}
	lbtest.WaitFor(t, 5*time.Second, "the metric to follow the renewal", func() bool {
		v, _ := gaugeValue(t, lb.reg, testName)
		return v == float64(renewed.NotAfter.Unix())
	})
}
