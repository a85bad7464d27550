package balancer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"syscall"
	"time"
)

// dialError marks an error that happened before any byte of the request was sent
// (TCP connect or TLS handshake), so the request may be retried whatever its method.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial backend: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// newDialer returns the dial function of a backend at addr (host:port): TCP bounded by
// dialTimeout (read at each dial, so that a reload changes it), then for an https backend
// a TLS handshake (HTTP/1.1 by ALPN) bounded by the same timeout. Its errors are dialErrors.
// It also returns the TCP connection's syscall.RawConn, for the idle check.
func newDialer(addr string, https bool, dialTimeout func() time.Duration, tlsConf *tls.Config) func(ctx context.Context) (net.Conn, syscall.RawConn, error) {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	var base *tls.Config
	if https {
		base = &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsConf != nil {
			base = tlsConf.Clone()
		}
		base.NextProtos = []string{"http/1.1"}
		if base.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			base.ServerName = host
		}
	}
	return func(ctx context.Context) (net.Conn, syscall.RawConn, error) {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout())
		defer cancel()
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, nil, &dialError{err: err}
		}
		var raw syscall.RawConn
		if sc, ok := c.(syscall.Conn); ok {
			raw, _ = sc.SyscallConn()
		}
		if base == nil {
			return c, raw, nil
		}
		tc := tls.Client(c, base)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, nil, &dialError{err: fmt.Errorf("tls handshake: %w", err)}
		}
		return tc, raw, nil
	}
}
