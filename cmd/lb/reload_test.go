package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// load sends GETs from a few clients until stop is closed (or a bound is
// reached) and counts answers by backend and failures.
type load struct {
	mu       sync.Mutex
	byName   map[string]int
	failures []string
	total    atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(t *testing.T, addr string, clients int) *load {
	ld := &load{byName: map[string]int{}, stop: make(chan struct{})}
	deadline := time.Now().Add(30 * time.Second)
	for range clients {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
				select {
				case <-ld.stop:
					return
				default:
				}
				resp, err := hc.Get("http://" + addr + "/load")
				ld.total.Add(1)
				if err != nil {
					ld.fail(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					ld.fail(fmt.Sprintf("status %d", resp.StatusCode))
					continue
				}
				ld.mu.Lock()
				ld.byName[resp.Header.Get("X-Backend")]++
				ld.mu.Unlock()
			}
		}()
	}
	return ld
}

func (ld *load) fail(s string) {
	ld.mu.Lock()
	ld.failures = append(ld.failures, s)
	ld.mu.Unlock()
}

func (ld *load) count(name string) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.byName[name]
}

func (ld *load) finish() {
	close(ld.stop)
	ld.wg.Wait()
}

func TestServeReload(t *testing.T) {
	b1 := newBackend(t, "app-1", nil)
	b2 := newBackend(t, "app-2", nil)
	b3 := newBackend(t, "app-3", nil)
	cfg := lbConfig{backends: []*testBackend{b1, b2}, extra: "policy: round_robin\n"}
	l := startLB(t, cfg)
	l.waitHealthy("app-1", "app-2")
	ctx := context.Background()
	rewrite := func(c lbConfig) {
		t.Helper()
		c.dir = dirOf(l.cfgPath)
		if err := os.WriteFile(l.cfgPath, []byte(c.render()), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ld := startLoad(t, l.addrs["http"], 4)
	lbtest.WaitFor(t, 10*time.Second, "load on app-1 and app-2", func() bool { return ld.count("app-1") > 20 && ld.count("app-2") > 20 })

	// Replace app-1 by app-3.
	rewrite(lbConfig{backends: []*testBackend{b2, b3}, extra: "policy: round_robin\n"})
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	l.waitHealthy("app-3")
	lbtest.WaitFor(t, 10*time.Second, "traffic on app-3", func() bool { return ld.count("app-3") > 20 })
	before1 := ld.count("app-1")
	lbtest.WaitFor(t, 10*time.Second, "more traffic on app-2 and app-3", func() bool { return ld.count("app-3") > 60 })
	if got := ld.count("app-1"); got != before1 {
		t.Errorf("removed app-1 still got %d requests after the reload", got-before1)
	}

	// Put all three back.
	rewrite(lbConfig{backends: []*testBackend{b1, b2, b3}, extra: "policy: round_robin\n"})
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	l.waitHealthy("app-1")
	lbtest.WaitFor(t, 10*time.Second, "traffic on app-1 again", func() bool { return ld.count("app-1") > before1+20 })
	ld.finish()
	if len(ld.failures) > 0 {
		t.Errorf("%d of %d requests failed during reloads, first: %s", len(ld.failures), ld.total.Load(), ld.failures[0])
	}
	t.Logf("%d requests, by backend %v", ld.total.Load(), ld.byName)

	// A drained backend stays drained across a reload; an API-added one is dropped.
	if _, err := l.client.Drain(ctx, "app-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.client.Add(ctx, "extra", b3.srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	list, err := l.client.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range list {
		names = append(names, b.Name+"="+b.State)
	}
	if got, want := strings.Join(names, ","), "app-1=active,app-2=draining,app-3=active"; got != want {
		t.Errorf("after reload: got %s, want %s", got, want)
	}
	if !strings.Contains(l.out.String(), `"backend":"extra"`) || !strings.Contains(l.out.String(), "dropped a backend added through the admin API") {
		t.Errorf("the dropped overlay backend is not logged")
	}

	// A bad file changes nothing.
	good, _ := os.ReadFile(l.cfgPath)
	bad := strings.Replace(string(good), "policy: round_robin", "policy: fastest", 1)
	bad = strings.Replace(bad, "  - name: app-3\n", "  - name: app-4\n", 1)
	if err := os.WriteFile(l.cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.doReload(); err == nil {
		t.Fatalf("reload of a bad file: got nil error")
	}
	after, err := l.client.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 3 || after[2].Name != "app-3" || after[1].State != "draining" {
		t.Errorf("a refused reload changed the backends: %+v", after)
	}
	out := l.out.String()
	if !strings.Contains(out, "reload refused, running config kept") || !strings.Contains(out, "policy") {
		t.Errorf("refused reload not logged with its problem")
	}
	// Listener changes are logged as needing a restart.
	changed := strings.Replace(string(good), `listen: "127.0.0.1:0"`, `listen: "127.0.0.1:1"`, 1)
	if err := os.WriteFile(l.cfgPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !strings.Contains(l.out.String(), "need a restart") {
		t.Errorf("listen change not logged as needing a restart")
	}
	if code, _, _ := l.get(t, "/still", nil); code != 200 {
		t.Errorf("after reloads: got %d, want 200", code)
	}
}

func TestServeReloadLimits(t *testing.T) {
	b := newBackend(t, "app-1", nil)
	cfg := lbConfig{backends: []*testBackend{b}, extra: "limits:\n  max_header_bytes: 65536\n"}
	l := startLB(t, cfg)
	l.waitHealthy("app-1")
	big := http.Header{"X-Big": {strings.Repeat("a", 10000)}}
	if code, _, _ := l.get(t, "/a", big); code != 200 {
		t.Fatalf("10 kB header under a 64 kB limit: got %d, want 200", code)
	}
	cfg.dir = dirOf(l.cfgPath)
	cfg.extra = "limits:\n  max_header_bytes: 2048\n"
	if err := os.WriteFile(l.cfgPath, []byte(cfg.render()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.doReload(); err != nil {
		t.Fatal(err)
	}
	// New connections get the new limit.
	http.DefaultClient.CloseIdleConnections()
	if code, _, _ := l.get(t, "/b", big); code != 431 {
		t.Errorf("10 kB header after lowering the limit to 2 kB: got %d, want 431", code)
	}
}

func dirOf(p string) string {
	return p[:strings.LastIndex(p, "/")]
}

// A reload keeps a backend by name with its health and counters, restores a
// file backend the admin API removed (and logs it), and applies trusted
// proxies and health checks.
func TestServeReloadKeepsStateAndAppliesSettings(t *testing.T) {
	b1 := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "app-1 xff=%s", strings.Join(r.Header.Values("X-Forwarded-For"), "|"))
	})
	b2 := newBackend(t, "app-2", nil)
	cfg := lbConfig{backends: []*testBackend{b1, b2}}
	l := startLB(t, cfg)
	l.waitHealthy("app-1", "app-2")
	ctx := context.Background()
	xff := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
	for range 4 {
		if _, body, _ := l.get(t, "/x", xff); !strings.HasSuffix(body, " xff=127.0.0.1") {
			t.Fatalf("untrusted peer: backend saw %q, want only 127.0.0.1 in X-Forwarded-For", body)
		}
	}
	if err := l.client.Remove(ctx, "app-2"); err != nil {
		t.Fatal(err)
	}
	before, err := l.client.Backend(ctx, "app-1")
	if err != nil {
		t.Fatal(err)
	}

	cfg.dir = dirOf(l.cfgPath)
	cfg.extra = "trusted_proxies: [127.0.0.1]\n"
	if err := os.WriteFile(l.cfgPath, []byte(cfg.render()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	after, err := l.client.Backend(ctx, "app-1")
	if err != nil {
		t.Fatal(err)
	}
	if !after.Healthy || after.Requests < before.Requests || after.ChecksOK < 1 {
		t.Errorf("kept backend after reload: got healthy=%v requests=%d checks_ok=%d, want healthy, requests >= %d",
			after.Healthy, after.Requests, after.ChecksOK, before.Requests)
	}
	if _, err := l.client.Backend(ctx, "app-2"); err != nil {
		t.Errorf("app-2 (in the file, removed through the API) after reload: %v", err)
	}
	if !strings.Contains(l.out.String(), "restored a backend removed through the admin API") {
		t.Errorf("the restored backend is not logged")
	}
	l.waitHealthy("app-2")
	if _, body, _ := l.get(t, "/x", xff); !strings.HasSuffix(body, " xff=203.0.113.7, 127.0.0.1") {
		t.Errorf("trusted peer after reload: backend saw %q, want the chain kept", body)
	}

	// A health-check path that fails takes the backend down.
	cfg.health = "  path: /down\n  interval: 100ms\n  timeout: 100ms\n  rise: 1\n  fall: 1\n"
	if err := os.WriteFile(l.cfgPath, []byte(cfg.render()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	lbtest.WaitFor(t, 10*time.Second, "app-1 down on the new health-check path", func() bool {
		b, err := l.client.Backend(ctx, "app-1")
		return err == nil && !b.Healthy && strings.Contains(b.LastError, "503")
	})
}
