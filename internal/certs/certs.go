// Package certs provides the TLS certificates of lb's HTTPS listener: from
// certificate files (re-read on Reload), or from an ACME CA through
// golang.org/x/crypto/acme/autocert (TLS-ALPN-01 on the HTTPS listener,
// HTTP-01 through HTTPHandler, a directory or PostgreSQL cache). It also
// provides the TLS settings, the http->https redirect and HSTS.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"

	"outrigger/internal/lbconfig"
)

// Source provides the certificates of the HTTPS listener, configured from
// the tls block of the lb config.
type Source struct {
	cfg    lbconfig.TLS
	log    *slog.Logger
	expiry *prometheus.GaugeVec

	file *FileCert  // file mode
	acme *acmeCerts // ACME mode

	mu        sync.Mutex
	fileNames []string // names exported for the file certificate
}

// New builds a Source from the tls block. With cert_file/key_file it reads
// them now (an error if they do not load). With acme it prepares an
// autocert.Manager; nothing is ordered until a handshake needs it. The
// metric lb_certificate_expiry_timestamp_seconds{name} is registered on reg
// (nil: not registered). ctx bounds set-up work only.
func New(ctx context.Context, cfg lbconfig.TLS, logger *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		cfg: cfg,
		log: logger,
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lb_certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the certificate served for a name, in Unix seconds; 0 for a tls.acme name without a certificate yet.",
		}, []string{"name"}),
	}
	switch {
	case cfg.ACME != nil && cfg.CertFile != "":
		return nil, errors.New("certs: set either cert_file+key_file or acme, not both")
	case cfg.ACME != nil:
		a, err := newACME(ctx, *cfg.ACME, logger, s.expiry)
		if err != nil {
			return nil, err
		}
		s.acme = a
	case cfg.CertFile != "" && cfg.KeyFile != "":
		f, err := LoadFileCert(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		s.file = f
		s.observeFile()
	default:
		return nil, errors.New("certs: no certificate source: set cert_file+key_file or acme")
	}
	if reg != nil {
		if err := reg.Register(s.expiry); err != nil {
			s.Close()
			return nil, fmt.Errorf("register certificate metric: %w", err)
		}
	}
	return s, nil
}

// TLSConfig returns the server TLS configuration for the HTTPS listener
// (see ServerTLSConfig); with ACME it also offers acme-tls/1 for TLS-ALPN-01.
func (s *Source) TLSConfig() *tls.Config {
	if s.acme != nil {
		return ServerTLSConfig(s.GetCertificate, acme.ALPNProto)
	}
	return ServerTLSConfig(s.GetCertificate)
}

// GetCertificate is the tls.Config.GetCertificate hook.
func (s *Source) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.acme != nil {
		return s.acme.getCertificate(hello)
	}
	return s.file.GetCertificate(hello)
}

// HTTPHandler is the handler of http_listen: with ACME it answers HTTP-01
// challenges (and calling it enables HTTP-01 as the second challenge
// type); every other request gets 308 to https with path and query kept,
// and the port of httpsAddr (the HTTPS listener's bound address) unless it
// is 443.
func (s *Source) HTTPHandler(httpsAddr string) http.Handler {
	redirect := Redirect(portOf(httpsAddr))
	if s.acme == nil {
		return redirect
	}
	return s.acme.httpHandler(redirect)
}

// HSTS wraps next with the configured Strict-Transport-Security header
// (tls.hsts) on HTTPS responses; next itself when hsts is empty.
func (s *Source) HSTS(next http.Handler) http.Handler {
	return HSTS(s.cfg.HSTS, next)
}

// Reload re-reads certificate files (SIGHUP); on error the old certificate
// stays in use. With ACME there is nothing to re-read and it returns nil.
func (s *Source) Reload() error {
	if s.file == nil {
		return nil
	}
	if err := s.file.Reload(); err != nil {
		s.log.Error("certificate reload failed, keeping the old one", "err", err)
		return err
	}
	s.observeFile()
	s.log.Info("certificate reloaded", append([]any{"names", certNames(s.file.Leaf())}, expiryAttrs(s.file.Leaf())...)...)
	return nil
}

// CertInfo is a name lb serves over HTTPS and its certificate's expiry.
type CertInfo struct {
	Name string
	// NotAfter is zero while lb has no certificate for the name (ACME, not issued yet).
	NotAfter time.Time
}

// Certificates lists the names lb serves and their certificates' expiry, as
// lb_certificate_expiry_timestamp_seconds does: every tls.acme name, or the
// names of the certificate file.
func (s *Source) Certificates() []CertInfo {
	if s.acme != nil {
		return s.acme.certificates()
	}
	leaf := s.file.Leaf()
	var out []CertInfo
	for _, n := range certNames(leaf) {
		out = append(out, CertInfo{Name: n, NotAfter: leaf.NotAfter})
	}
	return out
}

// Close releases what the Source holds open (the PostgreSQL cache pool).
// autocert's renewal timers cannot be stopped; they end with the process.
func (s *Source) Close() {
	if s.acme != nil {
		s.acme.close()
	}
}

// observeFile exports the file certificate's expiry under its names.
func (s *Source) observeFile() {
	leaf := s.file.Leaf()
	names := certNames(leaf)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range s.fileNames {
		s.expiry.DeleteLabelValues(old)
	}
	for _, n := range names {
		s.expiry.WithLabelValues(n).Set(float64(leaf.NotAfter.Unix()))
	}
	s.fileNames = names
}

// leafFromPEM returns the first certificate in PEM data (autocert's cache
// format: private key, then the chain).
func leafFromPEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no certificate in cached data")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
