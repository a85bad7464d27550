package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// FileCert serves a certificate read from a PEM certificate file and key
// file. Reload re-reads both; on error the previous certificate stays.
type FileCert struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadFileCert reads certFile and keyFile (PEM) and returns a FileCert
// serving them.
func LoadFileCert(certFile, keyFile string) (*FileCert, error) {
	f := &FileCert{certFile: certFile, keyFile: keyFile}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload re-reads the files. On error the certificate served so far is kept.
func (f *FileCert) Reload() error {
	c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", f.certFile, f.keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("parse certificate %s: %w", f.certFile, err)
		}
	}
	f.cur.Store(&c)
	return nil
}

// Leaf returns the parsed leaf certificate being served.
func (f *FileCert) Leaf() *x509.Certificate {
	return f.cur.Load().Leaf
}

// GetCertificate is a tls.Config.GetCertificate that returns the current
// certificate whatever the SNI.
func (f *FileCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := f.cur.Load()
	if c == nil {
		return nil, errors.New("certs: no certificate loaded")
	}
	return c, nil
}

// certNames are the names a leaf is exported under in the expiry metric.
func certNames(leaf *x509.Certificate) []string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames
	}
	var out []string
	for _, ip := range leaf.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 && leaf.Subject.CommonName != "" {
		out = append(out, leaf.Subject.CommonName)
	}
	return out
}

// expiryAttrs describes a leaf for log lines.
func expiryAttrs(leaf *x509.Certificate) []any {
	return []any{
		"serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
		"issuer", leaf.Issuer.CommonName,
	}
}
