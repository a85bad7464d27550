package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"outrigger/internal/frontend"
	"outrigger/internal/watchdog/watchdogtest"
)

func TestStalled(t *testing.T) {
	idle := frontend.Liveness{Accepting: true, WaitingInAccept: true, Accepted: 5, Served: 9}
	tests := []struct {
		name       string
		prev, cur  frontend.Liveness
		seen, srvd bool
		want       string // part of the error; "" = progress
	}{
		{name: "first look", prev: frontend.Liveness{}, cur: idle},
		{name: "idle, waiting in Accept", prev: idle, cur: idle, seen: true},
		{name: "accept loop stopped", prev: idle, cur: frontend.Liveness{Served: 9}, seen: true, want: "accept loop stopped"},
		{name: "accepting", prev: idle, cur: frontend.Liveness{Accepting: true, Accepted: 6, Served: 9}, seen: true},
		{name: "stuck handing a connection on", prev: frontend.Liveness{Accepting: true, Accepted: 5},
			cur: frontend.Liveness{Accepting: true, Accepted: 5}, seen: true, want: "not waiting in Accept"},
		{name: "full, requests finishing", prev: frontend.Liveness{Accepting: true, WaitingInAccept: true, Full: true, Served: 1},
			cur: frontend.Liveness{Accepting: true, WaitingInAccept: true, Full: true, Served: 8}, seen: true, srvd: true},
		{name: "full, requests finishing on another listener", prev: frontend.Liveness{Accepting: true, WaitingInAccept: true, Full: true},
			cur: frontend.Liveness{Accepting: true, WaitingInAccept: true, Full: true}, seen: true, srvd: true},
		{name: "full, nothing finishing", prev: frontend.Liveness{Accepting: true, WaitingInAccept: true, Full: true, Served: 3},
			cur: frontend.Liveness{Accepting: true, WaitingInAccept: true, Full: true, Served: 3}, seen: true, want: "max_conns"},
		{name: "just became full", prev: idle, cur: frontend.Liveness{Accepting: true, WaitingInAccept: true, Full: true, Accepted: 5, Served: 9}, seen: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := stalled(tc.cur, tc.prev, tc.seen, tc.srvd)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want progress", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestServeWatchdog runs lb serve with a notify socket of the test's own and
// WATCHDOG_USEC=400ms (a ping due every 200ms): pings arrive while lb is idle and while it
// serves; they stop while every max_conns slot (1 here) is held by a connection that never
// finishes a request, and come back once it closes. Without WATCHDOG_USEC no ping is sent.
func TestServeWatchdog(t *testing.T) {
	be := newBackend(t, "app-1", nil)
	sock := watchdogtest.New(t)
	const every = 200 * time.Millisecond
	l := startLB(t, lbConfig{backends: []*testBackend{be},
		extra: "limits:\n  max_conns: 1\n  read_header_timeout: 60s\n",
		env:   map[string]string{"NOTIFY_SOCKET": sock.Path, "WATCHDOG_USEC": "400000"}})
	l.waitHealthy("app-1")
	if !sock.WaitCount("WATCHDOG=1", 3, 10*time.Second) {
		t.Fatalf("got %d pings from an idle lb in 10s, want 3", sock.Count("WATCHDOG=1"))
	}
	// Connection: close: a keep-alive connection left idle would hold the only slot.
	if code, _, _ := l.get(t, "/", http.Header{"Connection": {"close"}}); code != 200 {
		t.Fatalf("GET through lb: got %d, want 200", code)
	}

	// Hold the only slot with a connection that never sends a request head.
	c, err := net.Dial("tcp", l.addrs["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(l.out.String(), "max_conns slot is held"); {
		if time.Now().After(deadline) {
			t.Fatalf("lb did not report the held slot in 10s:\n%s", l.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := sock.Count("WATCHDOG=1")
	time.Sleep(10 * every)
	if got := sock.Count("WATCHDOG=1") - before; got != 0 {
		t.Fatalf("got %d pings while the only slot was held and nothing finished, want none", got)
	}
	c.Close()
	if !sock.WaitCount("WATCHDOG=1", before+3, 10*time.Second) {
		t.Fatalf("pings did not resume after the connection closed:\n%s", l.out.String())
	}

	quiet := watchdogtest.New(t)
	startLB(t, lbConfig{backends: []*testBackend{be}, env: map[string]string{"NOTIFY_SOCKET": quiet.Path}})
	time.Sleep(5 * every)
	if n := quiet.Count("WATCHDOG=1"); n != 0 {
		t.Errorf("got %d pings without WATCHDOG_USEC, want none", n)
	}
}
