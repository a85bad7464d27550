package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/lbtest"
)

func TestServeAdminAuth(t *testing.T) {
	b := newBackend(t, "app-1", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b}})
	base := "http://" + l.addrs["admin"]
	tests := []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/api/backends", "", 401},
		{"GET", "/api/backends", "Bearer wrong", 401},
		{"POST", "/api/backends/app-1/drain", "Bearer " + testToken[:len(testToken)-1], 401},
		{"GET", "/api/backends", "Bearer " + testToken, 200},
		{"GET", "/metrics", "", 200},
		{"GET", "/healthz", "", 200},
		{"GET", "/", "", 200},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, base+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s auth=%q: got %d, want %d", tt.method, tt.path, tt.auth, resp.StatusCode, tt.want)
		}
	}
	// The public listener never serves the admin API: it proxies the path to a backend.
	l.waitHealthy("app-1")
	if _, body, h := l.get(t, "/api/backends", http.Header{"Authorization": {"Bearer " + testToken}}); h.Get("X-Backend") != "app-1" {
		t.Errorf("public /api/backends: got %q from %q, want the backend's answer", body, h.Get("X-Backend"))
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`lb_build_info{version="dev"} 1`, "lb_backend_up", "lb_health_checks_total"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(l.out.String(), testToken) {
		t.Errorf("the admin token appears in lb's output")
	}
}

func TestServeDrainAndStateFileSurvivesRestart(t *testing.T) {
	b1 := newBackend(t, "app-1", nil)
	b2 := newBackend(t, "app-2", nil)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	cfg := lbConfig{dir: dir, backends: []*testBackend{b1, b2}, extra: "state_file: " + statePath + "\n"}
	l := startLB(t, cfg)
	l.waitHealthy("app-1", "app-2")
	ctx := context.Background()
	if _, err := l.client.Drain(ctx, "app-2"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		code, _, h := l.get(t, "/x", nil)
		if code != 200 || h.Get("X-Backend") != "app-1" {
			t.Fatalf("request %d after drain: got %d from %q, want 200 from app-1", i, code, h.Get("X-Backend"))
		}
	}
	var doc stateDoc
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("state file %q: %v", data, err)
	}
	if doc.Backends["app-2"] != "draining" || doc.Backends["app-1"] != "active" {
		t.Errorf("state file: got %v, want app-1 active, app-2 draining", doc.Backends)
	}
	if err := l.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// A new lb with the same config starts with app-2 drained, before any API call.
	l2 := startLBFile(t, l.cfgPath)
	got, err := l2.client.Backend(ctx, "app-2")
	if err != nil || got.State != "draining" {
		t.Fatalf("after restart: app-2 %+v, %v; want draining", got, err)
	}
	l2.waitHealthy("app-1")
	for range 10 {
		if _, _, h := l2.get(t, "/y", nil); h.Get("X-Backend") != "app-1" {
			t.Fatalf("after restart a request reached %q, want app-1 only", h.Get("X-Backend"))
		}
	}
	if _, err := l2.client.Enable(ctx, "app-2"); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(statePath)
	if !strings.Contains(string(data), `"app-2": "active"`) {
		t.Errorf("state file after enable: %s", data)
	}
}

func TestServeRemoveWaitsForInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		w.Write([]byte("done"))
	})
	l := startLB(t, lbConfig{backends: []*testBackend{slow}})
	l.waitHealthy("app-1")
	result := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + l.addrs["http"] + "/slow")
		if err != nil {
			result <- 0
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	<-started
	removed := make(chan error, 1)
	go func() { removed <- l.client.Remove(context.Background(), "app-1") }()
	lbtest.WaitFor(t, 5*time.Second, "app-1 draining", func() bool {
		b, err := l.client.Backend(context.Background(), "app-1")
		return err == nil && b.State == "draining" && b.InFlight == 1
	})
	select {
	case err := <-removed:
		t.Fatalf("remove returned while a request was in flight: %v", err)
	default:
	}
	close(release)
	if err := <-removed; err != nil {
		t.Fatalf("remove: %v", err)
	}
	if code := <-result; code != 200 {
		t.Errorf("in-flight request: got %d, want 200", code)
	}
	var apiErr *admin.APIError
	if _, err := l.client.Backend(context.Background(), "app-1"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("after remove: got %v, want 404", err)
	}
}

// A backend removed through the admin API loses its passive failure count,
// so a backend added again under the same name starts from zero.
func TestServeAdminRemoveForgetsPassiveFailures(t *testing.T) {
	b1 := newBackend(t, "app-1", nil)
	b2 := newBackend(t, "app-2", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b1, b2},
		health: "  interval: 100ms\n  timeout: 100ms\n  rise: 1\n  fall: 3\n"})
	l.srv.passive.Observe("app-2", true)
	if got := l.srv.passive.Failures("app-2"); got != 1 {
		t.Fatalf("failures before remove: got %d, want 1", got)
	}
	if err := l.client.Remove(context.Background(), "app-2"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := l.srv.passive.Failures("app-2"); got != 0 {
		t.Errorf("failures after an admin-API remove: got %d, want 0", got)
	}
}
