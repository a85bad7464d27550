package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"outrigger/internal/lbconfig"
)

// failureLogEvery bounds how often the same failure for a name is logged
// (autocert itself keeps a failed issuance for a minute).
const failureLogEvery = time.Minute

// acmeCerts obtains certificates through autocert.
type acmeCerts struct {
	m       *autocert.Manager
	log     *slog.Logger
	expiry  *prometheus.GaugeVec
	domains []string
	allowed map[string]bool

	// lock, when set, serialises first issuance of a name across lbs.
	lock   func(ctx context.Context, name string, fn func() error) error
	closer func()

	mu       sync.Mutex
	cached   map[string]time.Time         // name -> NotAfter of the certificate in cache_dir at start
	leaves   map[string]*x509.Certificate // name -> leaf last seen
	failures map[string]failure           // name -> last failure logged
	refused  int                          // handshakes outside the policy not logged yet
	refLog   time.Time                    // when such a refusal was last logged
}

type failure struct {
	msg string
	at  time.Time
}

// newACME prepares the autocert manager for cfg.
func newACME(ctx context.Context, cfg lbconfig.ACME, logger *slog.Logger, expiry *prometheus.GaugeVec) (*acmeCerts, error) {
	if len(cfg.Domains) == 0 {
		return nil, fmt.Errorf("certs: tls.acme.domains is empty")
	}
	if cfg.CacheDir == "" {
		return nil, fmt.Errorf("certs: tls.acme.cache_dir is empty")
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("create acme cache dir: %w", err)
	}
	client, err := acmeHTTPClient(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	a := &acmeCerts{
		log:      logger,
		expiry:   expiry,
		domains:  cfg.Domains,
		allowed:  map[string]bool{},
		cached:   map[string]time.Time{},
		leaves:   map[string]*x509.Certificate{},
		failures: map[string]failure{},
	}
	for _, d := range cfg.Domains {
		a.allowed[strings.ToLower(d)] = true
	}
	transport := &acmeTransport{next: client.Transport, log: logger, seen: map[string]bool{}}
	client.Transport = transport

	var cache autocert.Cache = autocert.DirCache(cfg.CacheDir)
	if cfg.CacheDatabaseURL != "" {
		pc, err := newPGCacheFromConfig(ctx, cfg, cache, logger)
		if err != nil {
			return nil, err
		}
		cache = pc
		a.lock = pc.issueLock
		a.closer = pc.Close
		transport.gate = func(ctx context.Context, names []string) (func(bool), error) {
			return pc.orderGate(ctx, names, a.serving)
		}
	}
	a.exportConfigured(ctx, autocert.DirCache(cfg.CacheDir))
	a.m = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		HostPolicy:  autocert.HostWhitelist(cfg.Domains...),
		Cache:       &observedCache{Cache: cache, a: a},
		RenewBefore: cfg.RenewBefore,
		Email:       cfg.Email,
		Client: &acme.Client{
			DirectoryURL: cfg.DirectoryURL,
			HTTPClient:   client,
			UserAgent:    "outrigger-lb",
		},
	}
	return a, nil
}

// exportConfigured gives every configured name an expiry series from the
// start, so that a name whose certificate was never issued can alert: the
// NotAfter of the certificate cache_dir holds for it (every cache writes
// through to cache_dir), else 0 until one is served. It only peeks: the
// certificate in use is still autocert's choice at the first handshake.
func (a *acmeCerts) exportConfigured(ctx context.Context, dir autocert.DirCache) {
	for _, name := range a.domains {
		var notAfter int64
		for _, key := range []string{name, name + "+rsa"} {
			data, err := dir.Get(ctx, key)
			if err != nil {
				continue
			}
			if leaf, err := leafFromPEM(data); err == nil && leaf.NotAfter.Unix() > notAfter {
				notAfter = leaf.NotAfter.Unix()
			}
		}
		name = strings.ToLower(name)
		a.expiry.WithLabelValues(name).Set(float64(notAfter))
		if notAfter > 0 {
			a.cached[name] = time.Unix(notAfter, 0)
		}
	}
}

// certificates lists every configured name with the NotAfter of the
// certificate lb serves for it (or found in cache_dir at start); zero: none yet.
func (a *acmeCerts) certificates() []CertInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]CertInfo, 0, len(a.domains))
	for _, d := range a.domains {
		name := strings.ToLower(d)
		ci := CertInfo{Name: name, NotAfter: a.cached[name]}
		if leaf := a.leaves[name]; leaf != nil {
			ci.NotAfter = leaf.NotAfter
		}
		out = append(out, ci)
	}
	return out
}

func (a *acmeCerts) close() {
	if a.closer != nil {
		a.closer()
	}
}

// acmeHTTPClient is the HTTP client for the ACME server: the system roots
// plus caFile, if given.
func acmeHTTPClient(caFile string) (*http.Client, error) {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read tls.acme.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.acme.ca_file %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

// getCertificate wraps Manager.GetCertificate: challenge hellos pass
// straight through; a name outside the policy fails at once (no cache, DB
// or ACME call); a hello without SNI gets the first domain's certificate.
func (a *acmeCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		// A TLS-ALPN-01 probe: only for our names (no cache or DB lookups
		// for random SNI), never under the issuance lock.
		if !a.allowed[name] {
			return nil, fmt.Errorf("certs: no challenge for %q: not in tls.acme.domains", name)
		}
		return a.m.GetCertificate(hello)
	}
	if name == "" {
		name = a.domains[0]
		h := *hello
		h.ServerName = name
		hello = &h
	}
	if !a.allowed[name] {
		a.logRefused(name)
		return nil, fmt.Errorf("certs: no certificate for %q: not in tls.acme.domains", name)
	}
	var cert *tls.Certificate
	get := func() error {
		var err error
		cert, err = a.m.GetCertificate(hello)
		return err
	}
	var err error
	if a.lock != nil && !a.holds(name) {
		err = a.lock(hello.Context(), name, get)
	} else {
		err = get()
	}
	if err != nil {
		a.logFailure(name, err)
		return nil, err
	}
	a.observe(name, cert.Leaf, "")
	return cert, nil
}

// serving returns the leaf this process serves for name, or nil.
func (a *acmeCerts) serving(name string) *x509.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leaves[name]
}

// holds reports whether this process already serves a certificate for name.
func (a *acmeCerts) holds(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leaves[name] != nil
}

// observe records the leaf served for name: the expiry metric, and a log
// line when it changed (event says why: "issued", "cache", or "" for a
// handshake).
func (a *acmeCerts) observe(name string, leaf *x509.Certificate, event string) {
	if leaf == nil {
		return
	}
	a.mu.Lock()
	old := a.leaves[name]
	changed := old != leaf && (old == nil || !old.Equal(leaf))
	if changed {
		a.leaves[name] = leaf
	}
	delete(a.failures, name)
	a.mu.Unlock()
	if !changed {
		return
	}
	a.expiry.WithLabelValues(name).Set(float64(leaf.NotAfter.Unix()))
	attrs := append([]any{"name", name}, expiryAttrs(leaf)...)
	switch {
	case event == "issued" && old != nil:
		a.log.Info("certificate renewed", attrs...)
	case event == "issued":
		a.log.Info("certificate issued", attrs...)
	case event == "cache":
		a.log.Info("certificate loaded from cache", attrs...)
	default:
		a.log.Info("certificate in use", attrs...)
	}
}

// logFailure logs a failed certificate lookup for name, at most once a
// minute per name (a failed issuance makes autocert fail that name's
// handshakes for a minute, with a less telling error).
func (a *acmeCerts) logFailure(name string, err error) {
	msg := err.Error()
	now := time.Now()
	a.mu.Lock()
	last, ok := a.failures[name]
	if ok && now.Sub(last.at) < failureLogEvery {
		a.mu.Unlock()
		return
	}
	a.failures[name] = failure{msg: msg, at: now}
	a.mu.Unlock()
	a.log.Error("certificate failed", "name", name, "err", msg)
}

// logRefused logs a handshake for a name outside the policy: at most one
// line a minute (names are chosen by clients), with the count since.
func (a *acmeCerts) logRefused(name string) {
	now := time.Now()
	a.mu.Lock()
	a.refused++
	if now.Sub(a.refLog) < failureLogEvery {
		a.mu.Unlock()
		return
	}
	n := a.refused
	a.refused, a.refLog = 0, now
	a.mu.Unlock()
	a.log.Warn("handshake refused: name not in tls.acme.domains", "name", name, "refused", n)
}

// httpHandler answers HTTP-01 challenges and sends everything else to
// fallback. autocert checks the host policy against Host verbatim, so the
// port is stripped first (it is there on non-80 ports).
func (a *acmeCerts) httpHandler(fallback http.Handler) http.Handler {
	challenge := a.m.HTTPHandler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			fallback.ServeHTTP(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		r2.Host = strings.ToLower(stripPort(r.Host))
		challenge.ServeHTTP(w, r2)
	})
}

// observedCache wraps the autocert cache to see certificates being stored
// (issuance and renewal) and loaded.
type observedCache struct {
	autocert.Cache
	a *acmeCerts
}

// certName returns the domain of a cache key that holds a certificate
// (autocert keys: "name", "name+rsa"; others hold tokens and the account).
func (c *observedCache) certName(key string) (string, bool) {
	name := strings.TrimSuffix(key, "+rsa")
	if strings.Contains(name, "+") || !c.a.allowed[name] {
		return "", false
	}
	return name, true
}

func (c *observedCache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.Cache.Get(ctx, key)
	if err != nil {
		return data, err // autocert compares with ErrCacheMiss: never wrap
	}
	if name, ok := c.certName(key); ok {
		if leaf, perr := leafFromPEM(data); perr == nil {
			c.a.observe(name, leaf, "cache")
		}
	}
	return data, nil
}

func (c *observedCache) Put(ctx context.Context, key string, data []byte) error {
	err := c.Cache.Put(ctx, key, data)
	if name, ok := c.certName(key); ok {
		if leaf, perr := leafFromPEM(data); perr == nil {
			c.a.observe(name, leaf, "issued")
		}
		if err != nil {
			c.a.log.Error("certificate cache write failed", "name", name, "err", err)
		}
	}
	return err
}
