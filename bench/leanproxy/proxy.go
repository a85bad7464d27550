package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
)

// config is the part of lb's config file leanproxy uses.
type config struct {
	Listen string `yaml:"listen"`
	TLS    *struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Backends []struct {
		URL string `yaml:"url"`
	} `yaml:"backends"`
}

// backend is one upstream with a free list of idle keep-alive connections.
type backend struct {
	addr string
	mu   sync.Mutex
	idle []*upstream
}

// upstream is one connection to a backend with its buffers.
type upstream struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func (b *backend) get() (*upstream, error) {
	b.mu.Lock()
	if n := len(b.idle); n > 0 {
		u := b.idle[n-1]
		b.idle = b.idle[:n-1]
		b.mu.Unlock()
		return u, nil
	}
	b.mu.Unlock()
	c, err := net.DialTimeout("tcp", b.addr, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", b.addr, err)
	}
	return &upstream{c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, nil
}

func (b *backend) put(u *upstream) {
	b.mu.Lock()
	if len(b.idle) < 256 {
		b.idle = append(b.idle, u)
		u = nil
	}
	b.mu.Unlock()
	if u != nil {
		u.c.Close()
	}
}

type proxy struct {
	backends []*backend
	next     atomic.Uint64
	scheme   string
	log      slog.Handler
	bufs     sync.Pool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 4 || args[1] != "serve" || args[2] != "-config" {
		return errors.New("usage: leanproxy serve -config FILE")
	}
	raw, err := os.ReadFile(args[3])
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var cfg config
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("parse config: %w", err)
	}
	var urls []string
	for _, b := range cfg.Backends {
		urls = append(urls, b.URL)
	}
	mode := getenv("LEANPROXY_MODE")
	if mode == "" {
		mode = modeLean
	}
	if mode != modeLean && mode != modeSyncRT && mode != modeTransport {
		return fmt.Errorf("LEANPROXY_MODE=%q: want %s, %s or %s", mode, modeLean, modeSyncRT, modeTransport)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	if mode != modeLean {
		h, err := stdlibHandler(urls, mode, stdout)
		if err != nil {
			ln.Close()
			return err
		}
		return serveStdlib(ctx, ln, h)
	}
	p, err := newProxy(urls, stdout)
	if err != nil {
		ln.Close()
		return err
	}
	if cfg.TLS != nil {
		p.scheme = "https"
	}
	return p.serve(ctx, ln)
}

// newProxy returns a proxy over the backends' base URLs that logs to logw.
func newProxy(backends []string, logw io.Writer) (*proxy, error) {
	p := &proxy{scheme: "http", log: slog.NewJSONHandler(logw, nil)}
	p.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	for _, raw := range backends {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", raw, err)
		}
		p.backends = append(p.backends, &backend{addr: u.Host})
	}
	if len(p.backends) == 0 {
		return nil, errors.New("no backends")
	}
	return p, nil
}

// serve accepts client connections on ln until ctx is done.
func (p *proxy) serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go p.serveConn(c)
	}
}

// serveConn serves one client connection's requests in order.
func (p *proxy) serveConn(c net.Conn) {
	defer c.Close()
	peer, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(120 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		start := time.Now()
		status, n, keep := p.forward(bw, req, peer)
		if br.Buffered() == 0 || !keep {
			if bw.Flush() != nil {
				return
			}
		}
		p.logLine(req, peer, status, n, start)
		if !keep {
			return
		}
	}
}

// forward sends req to the next backend and copies the answer to bw. It
// reports the status, the body bytes and whether the client connection may
// be kept.
func (p *proxy) forward(bw *bufio.Writer, req *http.Request, peer string) (int, int64, bool) {
	b := p.backends[p.next.Add(1)%uint64(len(p.backends))]
	up, err := b.get()
	if err != nil {
		return p.fail(bw, http.StatusBadGateway), 0, false
	}
	h := req.Header
	h.Set("X-Forwarded-For", peer) // trusts no proxy, like lb's default trusted_proxies: []
	h.Set("X-Forwarded-Proto", p.scheme)
	h.Set("X-Forwarded-Host", req.Host)
	h.Del("Forwarded")
	h.Del("X-Real-Ip")
	closeAfter := req.Close
	// Request head, written by hand (http.Request.Write adds a User-Agent and
	// rewrites more than a proxy should).
	w := up.bw
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.RequestURI)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	for k, vs := range h {
		switch k {
		case "Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	bufp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bufp)
	var werr error
	switch {
	case req.ContentLength > 0:
		w.WriteString("Content-Length: " + strconv.FormatInt(req.ContentLength, 10) + "\r\n\r\n")
		_, werr = io.CopyBuffer(w, req.Body, *bufp)
	case req.ContentLength < 0: // chunked
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(w)
		if _, werr = io.CopyBuffer(cw, req.Body, *bufp); werr == nil {
			werr = cw.Close()
		}
		w.WriteString("\r\n")
	default:
		w.WriteString("\r\n")
	}
	if werr == nil {
		werr = w.Flush()
	}
	if werr != nil {
		up.c.Close()
		return p.fail(bw, http.StatusBadGateway), 0, false
	}
	up.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(up.br, req)
	if err != nil {
		up.c.Close()
		return p.fail(bw, http.StatusBadGateway), 0, false
	}
	up.c.SetReadDeadline(time.Time{})
	// Response head.
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(res.StatusCode))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(res.StatusCode))
	bw.WriteString("\r\n")
	for k, vs := range res.Header {
		switch k {
		case "Connection", "Content-Length", "Keep-Alive", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	var n int64
	bodyless := req.Method == http.MethodHead || res.StatusCode == 204 || res.StatusCode == 304
	switch {
	case bodyless:
		bw.WriteString("\r\n")
	case res.ContentLength >= 0:
		bw.WriteString("Content-Length: " + strconv.FormatInt(res.ContentLength, 10) + "\r\n\r\n")
		n, err = io.CopyBuffer(bw, res.Body, *bufp)
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if n, err = io.CopyBuffer(cw, res.Body, *bufp); err == nil {
			err = cw.Close()
		}
		bw.WriteString("\r\n")
	}
	res.Body.Close()
	if err != nil || res.Close {
		up.c.Close()
	} else {
		b.put(up)
	}
	return res.StatusCode, n, err == nil && !closeAfter
}

func (p *proxy) fail(bw *bufio.Writer, code int) int {
	body := `{"error":"backend unavailable"}` + "\n"
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	return code
}

// logLine writes the access-log line, with the fields lb logs.
func (p *proxy) logLine(req *http.Request, peer string, status int, n int64, start time.Time) {
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("method", req.Method), slog.String("path", req.URL.Path),
		slog.Int("status", status), slog.Float64("duration", time.Since(start).Seconds()),
		slog.String("client_ip", peer), slog.Int64("bytes", n))
	_ = p.log.Handle(context.Background(), r)
}
