// Command leanproxy is a measurement prototype, not product code: the least a
// Go HTTP/1.1 forwarder on net/http's parsers can cost per request on this
// machine, to tell whether issue 6's "leaner forwarding path" is worth
// building into lb. Each client connection is served by one goroutine that
// reads a request (http.ReadRequest), takes an idle keep-alive connection to
// the next backend (round robin) from a plain free list, writes the request,
// reads the response head (http.ReadResponse) and copies the body with a
// pooled buffer — no Transport goroutines, no per-request background read,
// no ReverseProxy. It sets X-Forwarded-For/-Proto/-Host and writes one JSON
// access-log line per request (slog, like lb). Bodies with Content-Length or
// chunked framing in both directions; no retries, health checks, upgrades or
// HTTP/2. It reads lb's YAML (listen, tls, backends) so bench/run.sh can run
// it as lbx:
//
//	go build -o /tmp/leanproxy ./bench/leanproxy
//	BENCH_LBX_BIN=/tmp/leanproxy BENCH_TARGETS="lb lbx haproxy" bench/run.sh
//
// LEANPROXY_MODE picks the design measured: "lean" (the default, above),
// "syncrt" (net/http.Server + httputil.ReverseProxy over a synchronous
// RoundTripper instead of http.Transport: stdlib.go) or "transport"
// (net/http.Server + httputil.ReverseProxy + http.Transport, lb's design
// without lb's features).
package main

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		servePprof(addr) // for bench/profile.sh
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		os.Stderr.WriteString("leanproxy: " + err.Error() + "\n")
		os.Exit(1)
	}
}

// servePprof serves net/http/pprof on addr in the background.
func servePprof(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		os.Stderr.WriteString("leanproxy: pprof: " + err.Error() + "\n")
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
}
