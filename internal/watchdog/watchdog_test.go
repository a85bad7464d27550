package watchdog_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"outrigger/internal/watchdog"
	"outrigger/internal/watchdog/watchdogtest"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		ok      bool
		wantErr bool
		timeout time.Duration
	}{
		{name: "no watchdog", env: map[string]string{"NOTIFY_SOCKET": "/run/x"}},
		{name: "no socket", env: map[string]string{"WATCHDOG_USEC": "20000000"}},
		{name: "on", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000"}, ok: true, timeout: 20 * time.Second},
		{name: "our pid", env: map[string]string{"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, ok: true, timeout: 30 * time.Second},
		{name: "another pid", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}},
		{name: "bad usec", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"}, wantErr: true},
		{name: "zero usec", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ok, err := watchdog.FromEnv(func(k string) string { return tc.env[k] }, 42)
			if (err != nil) != tc.wantErr || ok != tc.ok {
				t.Fatalf("got ok=%v err=%v, want ok=%v error=%v", ok, err, tc.ok, tc.wantErr)
			}
			if ok && (cfg.Timeout != tc.timeout || cfg.Interval() != tc.timeout/2) {
				t.Errorf("got timeout %v interval %v, want %v and half", cfg.Timeout, cfg.Interval(), tc.timeout)
			}
		})
	}
}

// TestRun: pings arrive at the interval while the check passes, stop while it fails, and
// come back when it passes again.
func TestRun(t *testing.T) {
	sock := watchdogtest.New(t)
	var stuck atomic.Bool
	check := func(context.Context) error {
		if stuck.Load() {
			return errors.New("accept loop stuck")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	cfg := watchdog.Config{Socket: sock.Path, Timeout: 100 * time.Millisecond}
	go func() {
		defer close(done)
		watchdog.Run(ctx, cfg, check, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()

	if !sock.WaitCount("WATCHDOG=1", 5, 10*time.Second) {
		t.Fatalf("got %d pings in 10s while healthy, want 5", sock.Count("WATCHDOG=1"))
	}
	stuck.Store(true)
	time.Sleep(2 * cfg.Interval()) // a ping already under way may still land
	before := sock.Count("WATCHDOG=1")
	time.Sleep(10 * cfg.Interval())
	if got := sock.Count("WATCHDOG=1"); got != before {
		t.Fatalf("got %d pings while the check failed, want none", got-before)
	}
	stuck.Store(false)
	if !sock.WaitCount("WATCHDOG=1", before+3, 10*time.Second) {
		t.Fatalf("pings did not resume after the check passed again")
	}
}

// TestNotifyAbstract: an abstract socket name (systemd's usual '@...') is reached too.
func TestNotifyAbstract(t *testing.T) {
	sock := watchdogtest.NewAbstract(t)
	if err := watchdog.Notify(sock.Path, "WATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
	if !sock.WaitCount("WATCHDOG=1", 1, 5*time.Second) {
		t.Fatal("no ping arrived on the abstract socket")
	}
}
