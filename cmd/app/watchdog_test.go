package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/pgtest"
	"outrigger/internal/watchdog"
	"outrigger/internal/watchdog/watchdogtest"
)

func TestProbeURL(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"0.0.0.0:8080", "http://127.0.0.1:8080/healthz"},
		{"[::]:8080", "http://127.0.0.1:8080/healthz"},
		{"10.0.0.11:8080", "http://10.0.0.11:8080/healthz"},
		{"[2001:db8::11]:8080", "http://[2001:db8::11]:8080/healthz"},
	}
	for _, tc := range tests {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := probeURL(a); got != tc.want {
			t.Errorf("probeURL(%s): got %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestSelfProbeWedged: the probe passes on any HTTP answer (503 too) and fails when the
// handler chain never answers, or when nothing takes connections off the listen queue (a
// wedged accept loop); through watchdog.Run, pings stop while the handlers are wedged and
// come back when they answer again.
func TestSelfProbeWedged(t *testing.T) {
	var wedged atomic.Bool
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wedged.Load() {
			select { // a handler stuck on a lock, say
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		http.Error(w, `{"status":"degraded"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	defer close(release)
	const timeout = 300 * time.Millisecond
	check := selfProbe(srv.URL+"/healthz", timeout)
	if err := check(t.Context()); err != nil {
		t.Fatalf("probe of an app answering 503: %v, want progress", err)
	}

	// A listener whose accept loop never runs: the kernel completes the handshake, nobody answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := selfProbe("http://"+ln.Addr().String()+"/healthz", timeout)(t.Context()); err == nil {
		t.Error("probe of a listener nobody accepts on passed, want an error")
	}

	sock := watchdogtest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	cfg := watchdog.Config{Socket: sock.Path, Timeout: 4 * timeout} // a probe every 2*timeout
	go func() {
		defer close(done)
		watchdog.Run(ctx, cfg, check, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	if !sock.WaitCount("WATCHDOG=1", 3, 10*time.Second) {
		t.Fatalf("got %d pings while the handlers answer, want 3", sock.Count("WATCHDOG=1"))
	}
	wedged.Store(true)
	time.Sleep(2 * cfg.Interval())
	before := sock.Count("WATCHDOG=1")
	time.Sleep(5 * cfg.Interval())
	if got := sock.Count("WATCHDOG=1") - before; got != 0 {
		t.Fatalf("got %d pings while the handlers were wedged, want none", got)
	}
	wedged.Store(false)
	if !sock.WaitCount("WATCHDOG=1", before+2, 10*time.Second) {
		t.Fatal("pings did not resume once the handlers answered again")
	}
}

// TestWatchdogProcess runs the real app as a process with a notify socket of the test's
// own and WATCHDOG_USEC=1s: READY=1, then WATCHDOG=1 about every 500ms; none while the
// process is frozen (SIGSTOP), again after SIGCONT. An app run without WATCHDOG_USEC
// sends no ping.
func TestWatchdogProcess(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := testEnv(t, dsn)
	sock := watchdogtest.New(t)
	env["NOTIFY_SOCKET"] = sock.Path
	env["WATCHDOG_USEC"] = "1000000"
	c := startChild(t, env)
	if !sock.WaitCount("READY=1", 1, 30*time.Second) || !sock.WaitCount("WATCHDOG=1", 3, 10*time.Second) {
		t.Fatalf("got %v, want READY=1 then 3 WATCHDOG=1", sock.Messages())
	}
	if m := sock.Messages(); m[0].State != "READY=1" {
		t.Errorf("first message %q, want READY=1", m[0].State)
	}
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	before := sock.Count("WATCHDOG=1")
	time.Sleep(2 * time.Second)
	if got := sock.Count("WATCHDOG=1") - before; got != 0 {
		t.Errorf("got %d pings from a frozen app, want none", got)
	}
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !sock.WaitCount("WATCHDOG=1", before+2, 10*time.Second) {
		t.Error("pings did not resume after SIGCONT")
	}
	if !strings.Contains(c.log.String(), `"msg":"systemd watchdog on"`) {
		t.Errorf("no 'systemd watchdog on' line in the log")
	}

	quiet := watchdogtest.New(t)
	env = testEnv(t, dsn)
	env["NOTIFY_SOCKET"] = quiet.Path
	a := startApp(t, env)
	waitFor(t, 20*time.Second, "/healthz answers", func() bool { _, code, _ := health(http.DefaultClient, a.URL); return code != 0 })
	time.Sleep(time.Second)
	if n := quiet.Count("WATCHDOG=1"); n != 0 {
		t.Errorf("got %d pings without WATCHDOG_USEC, want none", n)
	}
}
