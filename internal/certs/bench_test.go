package certs

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"outrigger/internal/lbconfig"
	"outrigger/internal/lbtest"
)

func BenchmarkGetCertificateFile(b *testing.B) {
	certFile, keyFile, _ := lbtest.SelfSigned(b, b.TempDir(), 1, 24*time.Hour, testName)
	src, err := New(context.Background(), lbconfig.TLS{CertFile: certFile, KeyFile: keyFile}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: testName}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.GetCertificate(hello); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetCertificateACME measures a handshake's certificate lookup for
// a name autocert holds in memory (seeded through its cache directory).
func BenchmarkGetCertificateACME(b *testing.B) {
	dir := b.TempDir()
	certFile, keyFile, _ := lbtest.SelfSigned(b, b.TempDir(), 1, 24*time.Hour, testName)
	key, _ := os.ReadFile(keyFile)
	cert, _ := os.ReadFile(certFile)
	if err := os.WriteFile(filepath.Join(dir, testName), append(key, cert...), 0o600); err != nil {
		b.Fatal(err)
	}
	src, err := New(context.Background(), lbconfig.TLS{ACME: &lbconfig.ACME{
		Domains: []string{testName}, DirectoryURL: "https://127.0.0.1:1/dir", CacheDir: dir}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: testName, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves: []tls.CurveID{tls.CurveP256}, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}
	if _, err := src.GetCertificate(hello); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.GetCertificate(hello); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetCertificateOutsidePolicy(b *testing.B) {
	src, err := New(context.Background(), lbconfig.TLS{ACME: &lbconfig.ACME{
		Domains: []string{testName}, DirectoryURL: "https://127.0.0.1:1/dir", CacheDir: b.TempDir()}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "random.example"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.GetCertificate(hello); err == nil {
			b.Fatal("want an error")
		}
	}
}
