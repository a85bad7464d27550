package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Modes of leanproxy (LEANPROXY_MODE), from the current lb design to the lean path; all log
// one JSON line per request, so they compare with each other and with lb.
const (
	modeLean      = "lean"      // own connection loop, synchronous backend I/O (proxy.go)
	modeSyncRT    = "syncrt"    // net/http.Server + httputil.ReverseProxy + syncTransport
	modeTransport = "transport" // net/http.Server + httputil.ReverseProxy + http.Transport
)

// syncTransport is an http.RoundTripper that uses a backend connection from the calling
// goroutine: write the request, read the response head, hand the body back; the connection
// returns to a free list when the body reaches EOF. No writeLoop/readLoop goroutines.
type syncTransport struct {
	b *backend
}

func (t *syncTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	up, err := t.b.get()
	if err != nil {
		return nil, err
	}
	if err := req.Write(up.bw); err != nil {
		up.c.Close()
		return nil, fmt.Errorf("write request: %w", err)
	}
	if err := up.bw.Flush(); err != nil {
		up.c.Close()
		return nil, fmt.Errorf("write request: %w", err)
	}
	up.c.SetReadDeadline(time.Now().Add(5 * time.Second)) // per-try timeout
	res, err := http.ReadResponse(up.br, req)
	if err != nil {
		up.c.Close()
		return nil, fmt.Errorf("read response: %w", err)
	}
	up.c.SetReadDeadline(time.Time{})
	res.Body = &returningBody{ReadCloser: res.Body, up: up, b: t.b, keep: !res.Close}
	return res, nil
}

// returningBody gives its connection back to the free list at EOF, or closes it when the
// body is abandoned before its end.
type returningBody struct {
	io.ReadCloser
	up   *upstream
	b    *backend
	keep bool
	done bool
}

func (r *returningBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF && !r.done {
		r.done = true
		if r.keep {
			r.b.put(r.up)
		} else {
			r.up.c.Close()
		}
	}
	return n, err
}

func (r *returningBody) Close() error {
	if !r.done {
		r.done = true
		r.up.c.Close()
	}
	return nil
}

// pooledBuffers is an httputil.BufferPool of 32 KiB buffers.
type pooledBuffers struct{ p sync.Pool }

func (b *pooledBuffers) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *pooledBuffers) Put(p []byte) { b.p.Put(&p) }

// stdlibHandler is a round-robin httputil.ReverseProxy handler over the backends with the
// given kind of transport, logging one JSON line per request.
func stdlibHandler(backends []string, mode string, logw io.Writer) (http.Handler, error) {
	bufs := &pooledBuffers{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	var proxies []*httputil.ReverseProxy
	for _, raw := range backends {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", raw, err)
		}
		var rt http.RoundTripper = &syncTransport{b: &backend{addr: u.Host}}
		if mode == modeTransport {
			rt = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 60 * time.Second,
				ResponseHeaderTimeout: 5 * time.Second, DisableCompression: true}
		}
		proxies = append(proxies, &httputil.ReverseProxy{
			Transport:  rt,
			BufferPool: bufs,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.Out.Host = pr.In.Host
				pr.SetXForwarded()
			},
		})
	}
	log := slog.NewJSONHandler(logw, nil)
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		proxies[next.Add(1)%uint64(len(proxies))].ServeHTTP(sw, r)
		peer, _, _ := net.SplitHostPort(r.RemoteAddr)
		rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
		rec.AddAttrs(slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.Float64("duration", time.Since(start).Seconds()),
			slog.String("client_ip", peer), slog.Int64("bytes", sw.n))
		_ = log.Handle(context.Background(), rec)
	}), nil
}

// statusWriter notes the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusWriter) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	s.n += int64(n)
	return n, err
}
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// serveStdlib serves h with net/http on ln until ctx is done.
func serveStdlib(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
