package deploy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain turns the test binary into a stand-in for lb when it is run under the name "lb"
// (a copy on a lab host): the keepalived lab tests need a process that serves, answers
// /readyz as DESIGN says, can be killed, and a `lb ready` that keepalived runs as its check.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "lb" {
		os.Exit(standin(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// standin is a small lb:
//
//	lb serve -listen :80 -admin 127.0.0.1:9000 -name NAME [-shutdown-delay D] [-fail-file F]
//	lb ready [-admin http://127.0.0.1:9000]
//
// serve answers every request on -listen with "NAME\n" (GET /?sleep=DURATION waits first;
// &size=N pads the body to N bytes) and GET /readyz on -admin with 200, or 503 once SIGTERM
// came (stopping) or while -fail-file exists (no backends). On SIGTERM it keeps serving for
// -shutdown-delay, then stops accepting and drains, as lb does. ready exits 0 when /readyz
// answers 200 within 1 s, else 1.
func standin(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: lb serve|ready [flags]")
		return 2
	}
	switch args[0] {
	case "serve":
		return standinServe(args[1:])
	case "ready":
		fs := flag.NewFlagSet("ready", flag.ContinueOnError)
		admin := fs.String("admin", "http://127.0.0.1:9000", "admin URL")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(*admin + "/readyz")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "lb: unknown command", args[0])
	return 2
}

func standinServe(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", ":80", "public address")
	admin := fs.String("admin", "127.0.0.1:9000", "admin address")
	name := fs.String("name", "lb", "what to answer")
	delay := fs.Duration("shutdown-delay", 0, "serve this long after SIGTERM")
	failFile := fs.String("fail-file", "", "not ready while this file exists")
	if fs.Parse(args) != nil {
		return 2
	}
	var stopping atomic.Bool
	public := &http.Server{Addr: *listen, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d)
		}
		body := []byte(*name + "\n")
		if n, err := strconv.Atoi(r.URL.Query().Get("size")); err == nil && n > len(body) {
			body = append(body, make([]byte, n-len(body))...)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})}
	adminSrv := &http.Server{Addr: *admin, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, failing := os.Stat(*failFile)
		switch {
		case stopping.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"stopping"}`)
		case *failFile != "" && failing == nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"no_backends"}`)
		default:
			fmt.Fprintln(w, `{"status":"ready"}`)
		}
	})}
	errc := make(chan error, 2)
	go func() { errc <- public.ListenAndServe() }()
	go func() { errc <- adminSrv.ListenAndServe() }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Println("serving")
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, err)
		return 1
	case <-sig:
	}
	stopping.Store(true)
	fmt.Println("stopping: /readyz says 503")
	time.Sleep(*delay)
	fmt.Println("draining")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := public.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
	}
	adminSrv.Close()
	fmt.Println("stopped")
	return 0
}
