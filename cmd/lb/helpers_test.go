package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/lbtest"
)

const testToken = "test-admin-token-0123456789"

// testBackend is a real HTTP backend that answers health checks.
type testBackend struct {
	name string
	srv  *httptest.Server
}

// newBackend starts a backend whose /healthz passes and whose other paths
// answer "NAME xff=X-Forwarded-For" (or run handler if given).
func newBackend(t *testing.T, name string, handler http.HandlerFunc) *testBackend {
	t.Helper()
	b := &testBackend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"status":"ok","version":"v1","instance":%q}`, name)
			return
		}
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s xff=%s", name, strings.Join(r.Header.Values("X-Forwarded-For"), "|"))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// stuckBackend starts a backend whose requests (other than health checks)
// block until their client goes or the test ends; started gets one value
// per request.
func stuckBackend(t *testing.T, name string) (*testBackend, <-chan struct{}) {
	t.Helper()
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	b := newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return b, started
}

// writeFile writes a file with mode 0600 in dir.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lbConfig renders a test config: loopback listeners on port 0, fast checks.
type lbConfig struct {
	dir       string
	backends  []*testBackend
	urls      [][2]string // more backends as name and URL (e.g. an lbtest.Recorder)
	extra     string      // more top-level YAML
	health    string      // health_check keys (default: fast checks, rise 1, fall 1)
	drain     string      // drain_timeout (default 5s)
	listen    string
	adminPart string            // extra admin keys
	env       map[string]string // lb's environment besides LOG_FORMAT=json
}

func (c lbConfig) render() string {
	var b strings.Builder
	listen := c.listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	fmt.Fprintf(&b, "listen: %q\n", listen)
	fmt.Fprintf(&b, "admin:\n  listen: 127.0.0.1:0\n  token_file: %s\n%s", filepath.Join(c.dir, "token"), c.adminPart)
	health := c.health
	if health == "" {
		health = "  interval: 100ms\n  timeout: 100ms\n  rise: 1\n  fall: 1\n"
	}
	b.WriteString("health_check:\n" + health)
	drain := c.drain
	if drain == "" {
		drain = "5s"
	}
	b.WriteString("drain_timeout: " + drain + "\n")
	b.WriteString(c.extra)
	b.WriteString("backends:\n")
	for _, be := range c.backends {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n", be.name, be.srv.URL)
	}
	for _, nu := range c.urls {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n", nu[0], nu[1])
	}
	if len(c.backends)+len(c.urls) == 0 {
		b.WriteString("  []\n")
	}
	return b.String()
}

// runningLB is an lb serve started in-process.
type runningLB struct {
	t       *testing.T
	cfgPath string
	addrs   map[string]string
	out     *lbtest.SyncBuffer
	cancel  context.CancelFunc
	done    chan error
	signals chan struct{} // a SIGTERM after the first (see serveHooks.signals)
	reload  chan struct{}
	reloads chan error
	client  *admin.Client
	srv     *lbServer // for tests that look inside
}

// startLB writes the config and token and runs `lb serve` until the test ends.
func startLB(t *testing.T, c lbConfig) *runningLB {
	t.Helper()
	if c.dir == "" {
		c.dir = t.TempDir()
	}
	if _, err := os.Stat(filepath.Join(c.dir, "token")); err != nil {
		writeFile(t, c.dir, "token", testToken+"\n")
	}
	cfgPath := writeFile(t, c.dir, "lb.yaml", c.render())
	return startLBWith(t, cfgPath, true, c.env)
}

func startLBFile(t *testing.T, cfgPath string) *runningLB {
	t.Helper()
	return startLBWith(t, cfgPath, true, nil)
}

// startLBWith runs serve with env added to LOG_FORMAT=json; with hookReload false, reloads
// come from real SIGHUPs.
func startLBWith(t *testing.T, cfgPath string, hookReload bool, env map[string]string) *runningLB {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &runningLB{t: t, cfgPath: cfgPath, addrs: map[string]string{}, out: &lbtest.SyncBuffer{}, cancel: cancel,
		done: make(chan error, 1), signals: make(chan struct{}, 4), reload: make(chan struct{}), reloads: make(chan error, 16)}
	type bound struct{ name, addr string }
	listening := make(chan bound, 8)
	ready := make(chan *lbServer, 1)
	hooks := serveHooks{
		listening: func(name, addr string) { listening <- bound{name, addr} },
		ready:     func(s *lbServer) { ready <- s },
		reloaded:  func(err error) { l.reloads <- err },
		signals:   l.signals,
	}
	if hookReload {
		hooks.reload = l.reload
	}
	getenv := func(k string) string {
		if k == "LOG_FORMAT" {
			return "json"
		}
		return env[k]
	}
	go func() {
		l.done <- runWith(ctx, []string{"lb", "serve", "-config", cfgPath}, getenv, l.out, l.out, hooks)
	}()
	t.Cleanup(func() {
		l.stop()
		if t.Failed() {
			t.Logf("lb output:\n%s", l.out.String())
		}
	})
	timeout := time.After(10 * time.Second)
	for waiting := true; waiting; {
		select {
		case l.srv = <-ready:
			waiting = false
		case err := <-l.done:
			l.done <- err // for stop
			t.Fatalf("lb serve exited early: %v\n%s", err, l.out.String())
		case <-timeout:
			t.Fatalf("lb serve did not listen in time:\n%s", l.out.String())
		}
	}
	for len(listening) > 0 {
		b := <-listening
		l.addrs[b.name] = b.addr
	}
	l.client = &admin.Client{BaseURL: "http://" + l.addrs["admin"], Token: testToken}
	return l
}

// stop cancels serve (like SIGTERM) and returns its result.
func (l *runningLB) stop() error {
	l.cancel()
	select {
	case err := <-l.done:
		l.done <- err
		return err
	case <-time.After(15 * time.Second):
		l.t.Errorf("lb serve did not stop within 15s")
		return nil
	}
}

// doReload triggers a reload and returns its outcome.
func (l *runningLB) doReload() error {
	l.t.Helper()
	select {
	case l.reload <- struct{}{}:
	case <-time.After(5 * time.Second):
		l.t.Fatal("reload not taken")
	}
	select {
	case err := <-l.reloads:
		return err
	case <-time.After(10 * time.Second):
		l.t.Fatal("reload did not finish")
	}
	return nil
}

// waitHealthy waits until every named backend is healthy.
func (l *runningLB) waitHealthy(names ...string) {
	l.t.Helper()
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := l.client.WaitHealthy(ctx, n, 20*time.Millisecond)
		cancel()
		if err != nil {
			l.t.Fatalf("backend %s not healthy: %v", n, err)
		}
	}
}

// getInBackground sends GET path to the public listener from a goroutine and
// discards the answer.
func (l *runningLB) getInBackground(path string) {
	go func() {
		resp, err := http.Get("http://" + l.addrs["http"] + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
}

// get sends GET to the public listener.
func (l *runningLB) get(t *testing.T, path string, hdr http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+l.addrs["http"]+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// readyz asks GET /readyz on l's admin listener (no token).
func (l *runningLB) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + l.addrs["admin"] + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}
