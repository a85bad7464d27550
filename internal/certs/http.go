package certs

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
)

// ServerTLSConfig returns a server TLS configuration: TLS 1.2 or later,
// HTTP/2 and HTTP/1.1 by ALPN (plus extraProtos, e.g. acme-tls/1), modern
// curves (hybrid post-quantum first) and AEAD cipher suites only for TLS 1.2.
func ServerTLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), extraProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		NextProtos:     append([]string{"h2", "http/1.1"}, extraProtos...),
		CurvePreferences: []tls.CurveID{
			tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384,
		},
		CipherSuites: []uint16{ // TLS 1.2 only; TLS 1.3 suites are not configurable
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)

// Redirect answers every request with 308 to the same host on https, path
// and query kept; httpsPort is shown in the URL unless it is "" or "443".
// A request without a usable Host gets 400.
func Redirect(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		ip, ipErr := netip.ParseAddr(host)
		if ipErr != nil && !hostRE.MatchString(host) {
			http.Error(w, "missing or bad Host header", http.StatusBadRequest)
			return
		}
		hostport := host
		switch {
		case httpsPort != "" && httpsPort != "443":
			hostport = net.JoinHostPort(host, httpsPort)
		case ipErr == nil && ip.Is6():
			hostport = "[" + host + "]"
		}
		uri := r.URL.RequestURI()
		if !strings.HasPrefix(uri, "/") {
			uri = "/"
		}
		http.Redirect(w, r, "https://"+hostport+uri, http.StatusPermanentRedirect)
	})
}

// HSTS sets Strict-Transport-Security to value on responses to requests
// that came over TLS. An empty value returns next unchanged.
func HSTS(value string, next http.Handler) http.Handler {
	if value == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", value)
		}
		next.ServeHTTP(w, r)
	})
}

// portOf returns the port of a listen address ("" when it has none).
func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return p
}

// stripPort returns host without a port.
func stripPort(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
