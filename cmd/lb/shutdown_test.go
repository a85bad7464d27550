package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

func TestServeShutdownDrainsInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	b := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "finished")
	})
	l := startLB(t, lbConfig{backends: []*testBackend{b}})
	l.waitHealthy("app-1")
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + l.addrs["http"] + "/long")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(body), err}
	}()
	<-started
	l.cancel() // what SIGTERM does through signal.NotifyContext
	lbtest.WaitFor(t, 5*time.Second, "the public listener to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", l.addrs["http"], time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-l.done:
		t.Fatalf("serve returned with a request in flight: %v", err)
	default:
	}
	close(release)
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("in-flight request across shutdown: got %d %q %v, want 200 \"finished\"", r.code, r.body, r.err)
	}
	select {
	case err := <-l.done:
		l.done <- err
		if err != nil {
			t.Errorf("serve: got %v, want nil (exit 0)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the last request finished")
	}
	if !strings.Contains(l.out.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped line")
	}
}

func TestServeShutdownCutsAtDrainTimeout(t *testing.T) {
	b, started := stuckBackend(t, "app-1")
	l := startLB(t, lbConfig{backends: []*testBackend{b}, drain: "300ms"})
	l.waitHealthy("app-1")
	l.getInBackground("/stuck")
	<-started
	start := time.Now()
	if err := l.stop(); err != nil {
		t.Errorf("serve: got %v, want nil", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s with drain_timeout 300ms", d)
	}
	if !strings.Contains(l.out.String(), "drain_timeout reached") {
		t.Errorf("cut requests not logged")
	}
}

// canConnect reports whether a new TCP connection to addr is accepted.
func canConnect(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitStopsAccepting waits until addr refuses new connections, and checks that this did not
// happen before delay had passed since t0 (the signal).
func waitStopsAccepting(t *testing.T, addr string, t0 time.Time, delay time.Duration) {
	t.Helper()
	lbtest.WaitFor(t, delay+5*time.Second, "the public listener to stop accepting", func() bool { return !canConnect(addr) })
	if took := time.Since(t0); took < delay {
		t.Errorf("the listener stopped accepting %s after SIGTERM, before shutdown_delay %s", took, delay)
	}
}

// TestServeShutdownDelay: on SIGTERM /readyz answers 503 at once, lb goes on accepting and
// serving for shutdown_delay (a connection kept alive from before the signal, and new ones;
// each answer with "Connection: close"), then stops accepting and lets the request in
// flight finish.
func TestServeShutdownDelay(t *testing.T) {
	const delay = 2 * time.Second
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	b := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/long" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	var once sync.Once
	releaseLong := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseLong) // before the backend's Close, even when the test fails
	l := startLB(t, lbConfig{backends: []*testBackend{b}, extra: "shutdown_delay: " + delay.String() + "\n"})
	l.waitHealthy("app-1")
	if code, body := l.readyz(t); code != 200 {
		t.Fatalf("GET /readyz before SIGTERM: %d %s", code, body)
	}
	kept := &http.Client{Transport: &http.Transport{}}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(kept.CloseIdleConnections)
	stopping := false // answers close their connections from SIGTERM on
	reused := 0       // requests of kept on a connection it had used before
	get := func(c *http.Client, path string) error {
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) {
				if info.Reused && c == kept {
					reused++
				}
			}})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.addrs["http"]+path, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		switch {
		case err != nil:
			return err
		case resp.StatusCode != 200 || string(body) != "ok":
			return fmt.Errorf("%d %q", resp.StatusCode, body)
		case c == kept && resp.Close != stopping:
			return fmt.Errorf("Connection: close %t, want %t", resp.Close, stopping)
		}
		return nil
	}
	if err := get(kept, "/"); err != nil { // a kept-alive connection from before the signal
		t.Fatal(err)
	}
	long := make(chan error, 1)
	go func() { long <- get(fresh, "/long") }()
	<-started

	t0 := time.Now()
	l.cancel() // SIGTERM
	lbtest.WaitFor(t, 2*time.Second, "/readyz to answer 503", func() bool {
		code, body := l.readyz(t)
		return code == 503 && body == `{"status":"stopping"}`
	})
	if v, ok := metricValue(t, l.addrs["admin"], "lb_ready"); !ok || v != 0 {
		t.Errorf("lb_ready while stopping = %v (present %t), want 0", v, ok)
	}
	// Still serving, on the old connection and on new ones, until half the delay is over:
	// the connection kept alive from before the signal was not closed (a request may
	// already be on its way), and each answer now closes its connection, so that clients
	// reconnect, to the other lb of a pair once the address has moved.
	stopping = true
	if err := get(kept, "/"); err != nil || reused != 1 {
		t.Fatalf("the connection kept alive across SIGTERM: %v, reused %d times, want once", err, reused)
	}
	n := 0
	for time.Since(t0) < delay/2 {
		for _, c := range []*http.Client{kept, fresh} {
			if err := get(c, "/"); err != nil {
				t.Fatalf("request %d during shutdown_delay (%s after SIGTERM): %v", n, time.Since(t0), err)
			}
			n++
		}
	}
	waitStopsAccepting(t, l.addrs["http"], t0, delay)
	select {
	case err := <-l.done:
		t.Fatalf("serve returned with a request in flight: %v", err)
	default:
	}
	releaseLong()
	if err := <-long; err != nil {
		t.Errorf("the request in flight across the shutdown: %v", err)
	}
	if err := l.stop(); err != nil {
		t.Errorf("serve: %v, want nil (exit 0)", err)
	}
	t.Logf("%d requests served during shutdown_delay", n)
	out := l.out.String()
	last := 0
	for _, msg := range []string{`"msg":"stopping: /readyz answers 503; still accepting and serving for shutdown_delay","shutdown_delay":"2s"`,
		`"msg":"shutdown_delay over"`, `"msg":"shutting down: no longer accepting`, `"msg":"stopped"`} {
		i := strings.Index(out, msg)
		if i < last {
			t.Errorf("log line %s missing or out of order:\n%s", msg, out)
			continue
		}
		last = i
	}
}

// TestServeShutdownFurtherSignals: a second signal ends shutdown_delay, a third the drain.
func TestServeShutdownFurtherSignals(t *testing.T) {
	b, started := stuckBackend(t, "app-1")
	l := startLB(t, lbConfig{backends: []*testBackend{b}, drain: "1m", extra: "shutdown_delay: 1m\n"})
	l.waitHealthy("app-1")
	l.getInBackground("/stuck")
	<-started
	l.cancel()
	lbtest.WaitFor(t, 5*time.Second, "the stopping line", func() bool { return l.out.Count("still accepting and serving") == 1 })
	if !canConnect(l.addrs["http"]) {
		t.Fatal("not accepting during shutdown_delay")
	}
	l.signals <- struct{}{}
	lbtest.WaitFor(t, 5*time.Second, "the public listener to stop accepting", func() bool { return !canConnect(l.addrs["http"]) })
	if !l.out.HasLine(`"msg":"another signal: skipping the rest of shutdown_delay"`) {
		t.Errorf("the skipped delay is not logged")
	}
	select {
	case err := <-l.done:
		t.Fatalf("serve returned with a request in flight and drain_timeout 1m: %v", err)
	default:
	}
	l.signals <- struct{}{}
	select {
	case err := <-l.done:
		l.done <- err
		if err != nil {
			t.Errorf("serve: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a third signal did not end the drain")
	}
	for _, msg := range []string{"another signal: ending the drain now", "drain ended by a further signal: cut what was left", `"msg":"stopped"`} {
		if !strings.Contains(l.out.String(), msg) {
			t.Errorf("no %q line", msg)
		}
	}
}
