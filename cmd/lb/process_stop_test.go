package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/lbtest"
)

// loadResult counts the requests of a small load.
type loadResult struct {
	ok, afterStop atomic.Int64 // afterStop: begun after the SIGTERM
	mu            sync.Mutex
	failures      []string
}

// runLoad sends GETs to url from workers goroutines, alternately on a kept-alive connection
// and on a new one, until stop is closed; a request begun after stopping was set counts in
// afterStop. It returns when every worker is done.
func runLoad(url string, workers int, stop <-chan struct{}, stopping *atomic.Bool, res *loadResult) {
	var wg sync.WaitGroup
	for w := range workers {
		kept := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
		fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		wg.Go(func() {
			defer kept.CloseIdleConnections()
			for i := 0; i < 100000; i++ { // bounded; stop ends it long before
				select {
				case <-stop:
					return
				default:
				}
				after := stopping.Load()
				c := kept
				if i%2 == 1 {
					c = fresh
				}
				err := func() error {
					resp, err := c.Get(url)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					if _, err := io.Copy(io.Discard, resp.Body); err != nil {
						return err
					}
					if resp.StatusCode != 200 {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				}()
				if err != nil {
					res.mu.Lock()
					res.failures = append(res.failures, fmt.Sprintf("worker %d request %d (after SIGTERM: %t): %v", w, i, after, err))
					res.mu.Unlock()
					continue
				}
				res.ok.Add(1)
				if after {
					res.afterStop.Add(1)
				}
			}
		})
	}
	wg.Wait()
}

// startStoppable runs bin as a process in front of backend b with drain_timeout drain and
// shutdown_delay delay, and returns it with an admin client once b is healthy.
func startStoppable(t *testing.T, bin string, b *testBackend, drain, delay string) (*lbProcess, *admin.Client) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "token", testToken)
	cfg := writeFile(t, dir, "lb.yaml", lbConfig{dir: dir, backends: []*testBackend{b}, drain: drain,
		extra: "shutdown_delay: " + delay + "\n"}.render())
	p := startProcess(t, bin, cfg)
	client := &admin.Client{BaseURL: "http://" + p.addrs["admin"], Token: testToken}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := client.WaitHealthy(ctx, b.name, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return p, client
}

// TestBinaryShutdownDelay sends SIGTERM to a real lb process with shutdown_delay 2s under a
// small load: /readyz answers 503 at once, new and kept-alive connections are still served
// during the delay and none fails, the listener refuses after the delay, the request in
// flight finishes, and lb exits 0.
func TestBinaryShutdownDelay(t *testing.T) {
	const delay = 2 * time.Second
	bin := buildLB(t, "v-stop")
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	releaseLong := func() { once.Do(func() { close(release) }) }
	b := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/long" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	t.Cleanup(releaseLong)
	p, client := startStoppable(t, bin, b, "10s", delay.String())
	if ready, status, err := client.Ready(t.Context()); !ready {
		t.Fatalf("before SIGTERM: /readyz %s, %v", status, err)
	}

	stop := make(chan struct{})
	var stopping atomic.Bool
	res := &loadResult{}
	loadDone := make(chan struct{})
	go func() { runLoad("http://"+p.addrs["http"]+"/", 4, stop, &stopping, res); close(loadDone) }()
	lbtest.WaitFor(t, 10*time.Second, "some load before the signal", func() bool { return res.ok.Load() >= 20 })

	t0 := time.Now()
	stopping.Store(true)
	p.signal(syscall.SIGTERM)
	lbtest.WaitFor(t, 2*time.Second, "/readyz to answer 503 stopping", func() bool {
		ready, status, err := client.Ready(t.Context())
		return err == nil && !ready && status == admin.Stopping
	})
	if !canConnect(p.addrs["http"]) {
		t.Fatal("the public listener refused as soon as /readyz said stopping")
	}
	long := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + p.addrs["http"] + "/long")
		if err == nil {
			defer resp.Body.Close()
			if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "ok" {
				err = fmt.Errorf("%d %q", resp.StatusCode, body)
			}
		}
		long <- err
	}()
	<-started
	time.Sleep(time.Until(t0.Add(delay / 2))) // the load runs through the first half of the delay
	close(stop)
	<-loadDone
	res.mu.Lock()
	if len(res.failures) > 0 {
		t.Errorf("%d request(s) failed, the first: %s", len(res.failures), res.failures[0])
	}
	res.mu.Unlock()
	if res.afterStop.Load() == 0 {
		t.Errorf("no request served after SIGTERM")
	}
	t.Logf("%d requests served, %d of them during shutdown_delay", res.ok.Load(), res.afterStop.Load())

	waitStopsAccepting(t, p.addrs["http"], t0, delay)
	select {
	case err := <-p.exited:
		t.Fatalf("lb exited with a request in flight: %v", err)
	default:
	}
	releaseLong()
	if err := <-long; err != nil {
		t.Errorf("the request in flight across the stop: %v", err)
	}
	p.waitExit(10 * time.Second)
	if m := p.waitLine("stopping: /readyz answers 503; still accepting and serving for shutdown_delay"); m["shutdown_delay"] != "2s" {
		t.Errorf("stopping line %v, want shutdown_delay 2s", m)
	}
	p.waitLine("shutdown_delay over")
	p.waitLine("shutting down: no longer accepting, draining requests in flight")
	p.waitLine("stopped")
}

// TestBinaryFurtherSignals: real signals to a real process. The second SIGTERM ends
// shutdown_delay, a SIGINT after it ends the drain; lb still exits 0.
func TestBinaryFurtherSignals(t *testing.T) {
	bin := buildLB(t, "v-signals")
	b, started := stuckBackend(t, "app-1")
	p, _ := startStoppable(t, bin, b, "1m", "1m")
	go func() {
		if resp, err := http.Get("http://" + p.addrs["http"] + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	start := time.Now()
	p.signal(syscall.SIGTERM)
	p.waitLine("stopping: /readyz answers 503; still accepting and serving for shutdown_delay")
	p.signal(syscall.SIGTERM)
	p.waitLine("another signal: skipping the rest of shutdown_delay")
	p.waitLine("shutting down: no longer accepting, draining requests in flight")
	p.signal(syscall.SIGINT)
	p.waitLine("another signal: ending the drain now, cutting what is left")
	p.waitLine("stopped")
	p.waitExit(10 * time.Second)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("stopping took %s with shutdown_delay and drain_timeout 1m: the signals did not hurry it", took)
	}
}
