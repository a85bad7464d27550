package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// body is the fixed response: small, so the benchmark measures the proxies
// and not the bytes.
var body = []byte("hello from the bench backend\n")

const healthBody = `{"status":"ok","version":"bench"}` + "\n"

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// handler answers /healthz with the JSON lb's health checker expects and
// everything else with body.
func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.URL.Path == "/healthz" {
			h["Content-Type"] = []string{"application/json"}
			io.WriteString(w, healthBody)
			return
		}
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.Write(body)
	})
}

func newServer() *http.Server {
	return &http.Server{
		Handler:           handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Handshake resets when wrk stops are expected; writing them would
		// cost the backend time in the middle of a measurement.
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

// run serves every -listen address (plain HTTP) and every -tls-listen address
// (HTTPS with -cert/-key) until ctx is done, then shuts down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var plain, secure listFlag
	fs.Var(&plain, "listen", "plain HTTP listen address (repeatable)")
	fs.Var(&secure, "tls-listen", "HTTPS listen address (repeatable; needs -cert and -key)")
	certFile := fs.String("cert", "", "TLS certificate file (PEM)")
	keyFile := fs.String("key", "", "TLS key file (PEM)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if len(plain)+len(secure) == 0 {
		return errors.New("at least one -listen or -tls-listen is required")
	}
	var tlsConf *tls.Config
	if len(secure) > 0 {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load certificate: %w", err)
		}
		// HTTP/2 as well: the "direct" reference of the h2 mode.
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	}

	var servers []*http.Server
	errc := make(chan error, len(plain)+len(secure))
	serve := func(addr string, tc *tls.Config) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		srv := newServer()
		servers = append(servers, srv)
		kind := "http"
		if tc != nil {
			kind = "https"
			ln = tls.NewListener(ln, tc)
		}
		fmt.Fprintf(stdout, "listening %s %s\n", kind, ln.Addr())
		go func() { errc <- srv.Serve(ln) }()
		return nil
	}
	var err error
	for _, a := range plain {
		if err = serve(a, nil); err != nil {
			break
		}
	}
	for _, a := range secure {
		if err != nil {
			break
		}
		err = serve(a, tlsConf)
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-errc:
			err = fmt.Errorf("serve: %w", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Shutdown(shutdownCtx) }()
	}
	wg.Wait()
	return err
}
