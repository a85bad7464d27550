package balancer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"
)

// Transport settings fixed by DESIGN.md.
const (
	idleConnTimeout     = 60 * time.Second // shorter than the app's 120 s IdleTimeout
	maxIdleConnsPerHost = 256
)

// dialError marks an error that happened before any byte of the request was sent
// (TCP connect or TLS handshake), so the request may be retried whatever its method.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial backend: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// newTransport builds the connection pool for one backend. dialTimeout is read at each dial,
// so a reload changes it without a new transport; perTry becomes ResponseHeaderTimeout.
func newTransport(scheme string, dialTimeout func() time.Duration, perTry time.Duration, tlsConf *tls.Config) *http.Transport {
	dial := newDial(dialTimeout)
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		MaxIdleConns:          0, // no global cap; per host below
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: perTry,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass Accept-Encoding through untouched
		ForceAttemptHTTP2:     false,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}
	if scheme == "https" {
		base := &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsConf != nil {
			base = tlsConf.Clone()
		}
		base.NextProtos = []string{"http/1.1"}
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := base.Clone()
			if cfg.ServerName == "" {
				host, _, err := net.SplitHostPort(addr)
				if err != nil {
					host = addr
				}
				cfg.ServerName = host
			}
			tc := tls.Client(raw, cfg)
			hctx, cancel := context.WithTimeout(ctx, dialTimeout())
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				_ = raw.Close()
				return nil, &dialError{err: fmt.Errorf("tls handshake: %w", err)}
			}
			return tc, nil
		}
	}
	return t
}

// newDial returns a TCP dial function bounded by dialTimeout (read at each dial) whose
// errors are dialErrors.
func newDial(dialTimeout func() time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout())
		defer cancel()
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err: err}
		}
		return c, nil
	}
}

// bufferPool recycles the 32 KiB buffers the reverse proxies copy response bodies with.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
}

func (bp *bufferPool) Get() []byte { return bp.p.Get().(*[32 << 10]byte)[:] }
func (bp *bufferPool) Put(b []byte) {
	if len(b) == 32<<10 {
		bp.p.Put((*[32 << 10]byte)(b))
	}
}

// backendTransport forwards to the backend's current transport, which a reload may replace.
type backendTransport struct{ b *Backend }

// RoundTrip uses the backend's synchronous transport where it is safe (see syncEligible),
// else its http.Transport.
func (t backendTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.b.sync != nil && syncEligible(r) {
		return t.b.sync.RoundTrip(r)
	}
	return t.b.tr.Load().RoundTrip(r)
}

// checkSwitch refuses a 101 answer that ReverseProxy would refuse without closing its body
// (another protocol than the request asked for, or a body it cannot write to): for
// http.Transport that body is the backend connection itself, outside any pool, so it would
// stay open for good. Returned from ModifyResponse, the error makes ReverseProxy close it.
func checkSwitch(res *http.Response) error {
	if res.StatusCode != http.StatusSwitchingProtocols {
		return nil
	}
	want, got := upgradeType(res.Request.Header), upgradeType(res.Header)
	if got == "" || !strings.EqualFold(want, got) {
		return fmt.Errorf("backend switched to protocol %q when %q was requested", got, want)
	}
	for i := 0; i < len(got); i++ {
		if got[i] < ' ' || got[i] > '~' {
			return fmt.Errorf("backend switched to invalid protocol %q", got)
		}
	}
	if _, ok := res.Body.(io.ReadWriteCloser); !ok {
		return errors.New("101 switching protocols response with a body that cannot be written")
	}
	return nil
}

// upgradeType is the Upgrade header's value when Connection lists "upgrade" (as ReverseProxy).
func upgradeType(h http.Header) string {
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

// newReverseProxy builds the per-backend reverse proxy. The hooks find the request's
// dispatch state in its context (see proxy.go); errors are recorded, never written.
func newReverseProxy(b *Backend, logger *slog.Logger, buffers httputil.BufferPool) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		BufferPool: buffers,
		Rewrite:    func(pr *httputil.ProxyRequest) { rewrite(b, pr) },
		Transport:  backendTransport{b: b},
		// FlushInterval 0: a response with a Content-Length goes out when the copy ends (or the
		// server's write buffer fills), headers and body in one write. ReverseProxy still
		// flushes every write of a response without a Content-Length (chunked) or of type
		// text/event-stream, so streams stay live. (-1 started a timer per response whose
		// goroutine flushed the headers in a write of their own: ≈ 9 µs per request.)
		FlushInterval: 0,
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		ModifyResponse: func(res *http.Response) error {
			if err := checkSwitch(res); err != nil {
				return err // ReverseProxy closes the body, then ErrorHandler records err
			}
			gotResponse(b, res)
			return nil
		},
		ErrorHandler: recordError,
	}
}
