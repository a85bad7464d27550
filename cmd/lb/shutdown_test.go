package main

import (
	"io"
	"net"
	"net/http"
	"strings"
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
