package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/balancer"
	"outrigger/internal/health"
)

// rolloutStack is a real pool, health checker and admin API in-process, in
// front of app servers whose /healthz reports the version in a file.
type rolloutStack struct {
	dir       string
	pool      *balancer.Pool
	adminURL  string
	tokenFile string
}

func newRolloutStack(t *testing.T, names ...string) *rolloutStack {
	t.Helper()
	s := &rolloutStack{dir: t.TempDir()}
	pool, err := balancer.NewPool(balancer.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.pool = pool
	for _, name := range names {
		verFile := filepath.Join(s.dir, name+".version")
		if err := os.WriteFile(verFile, []byte("v1"), 0o644); err != nil {
			t.Fatal(err)
		}
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, err := os.ReadFile(verFile)
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": string(v), "instance": name})
		}))
		t.Cleanup(app.Close)
		if _, err := pool.Add(name, app.URL); err != nil {
			t.Fatal(err)
		}
	}
	checker, err := health.NewChecker(health.Config{Interval: 50 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2},
		pool, pool, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { checker.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	const token = "rollout-test-token-0123456789abcdef"
	s.tokenFile = filepath.Join(s.dir, "admin-token")
	if err := os.WriteFile(s.tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(admin.NewHandler(pool, nil, admin.Options{Token: func() string { return token }}))
	t.Cleanup(api.Close)
	s.adminURL = api.URL

	// Bounded poll until the real checker admitted every backend.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for _, name := range names {
		for !pool.IsHealthy(name) {
			select {
			case <-deadline:
				t.Fatalf("%s never became healthy", name)
			case <-tick.C:
			}
		}
	}
	return s
}

// rolloutScript "installs" version $2 by writing the file the app serves.
const rolloutScript = `printf '%s' "$2" > "$1/$LB_BACKEND_NAME.version"; echo "installed $2 on $LB_BACKEND_NAME ($LB_BACKEND_HOST)"`

func TestRolloutCommandEndToEnd(t *testing.T) {
	s := newRolloutStack(t, "app-1", "app-2")
	env := map[string]string{"LB_ADMIN": s.adminURL, "LB_ADMIN_TOKEN_FILE": s.tokenFile}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"lb", "rollout", "-expect-version", "v2", "-rise", "2", "-timeout", "20s", "-v",
		"--", "/bin/sh", "-c", rolloutScript, "sh", s.dir, "v2"},
		func(k string) string { return env[k] }, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("lb rollout: %v", err)
	}
	for _, st := range s.pool.Snapshot() {
		if st.State != balancer.StateActive || st.Version != "v2" || !st.Healthy {
			t.Errorf("%s: %s version %q healthy %t, want active v2 healthy", st.Name, st.State, st.Version, st.Healthy)
		}
	}
	if !strings.Contains(stdout.String(), "rollout done: 2 of 2 backend(s)") {
		t.Errorf("stdout lacks the summary")
	}
	// -v copies the command's output to stderr.
	if !strings.Contains(stderr.String(), "installed v2 on app-1 (127.0.0.1)") {
		t.Errorf("stderr lacks the command's output")
	}
}

func TestRolloutCommandErrors(t *testing.T) {
	s := newRolloutStack(t, "app-1", "app-2")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string
	}{
		{"no command", []string{"-admin", s.adminURL, "-token-file", s.tokenFile}, nil, 2, ""},
		{"max unavailable 2", []string{"-admin", s.adminURL, "-token-file", s.tokenFile, "-max-unavailable", "2", "--", "true"}, nil, 2, ""},
		{"no admin", []string{"-token-file", s.tokenFile, "--", "true"}, nil, 2, ""},
		{"no token", []string{"-admin", s.adminURL, "--", "true"}, nil, 2, ""},
		{"bad rise", []string{"-admin", s.adminURL, "-token-file", s.tokenFile, "-rise", "0", "--", "true"}, nil, 2, ""},
		{"failing command", []string{"-admin", s.adminURL, "-token-file", s.tokenFile, "--", "/bin/sh", "-c", "exit 7"}, nil, 1, "FAILED (left drained)"},
		{"dry run from the environment", []string{"-dry-run", "--", "/bin/sh", "-c", "exit 7"},
			map[string]string{"LB_ADMIN": s.adminURL, "LB_ADMIN_TOKEN_FILE": s.tokenFile}, 0, "dry run: nothing was changed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"lb", "rollout"}, tc.args...),
				func(k string) string { return tc.env[k] }, &stdout, &stderr)
			if code := exitCode(err, &stderr); code != tc.wantCode {
				t.Errorf("exit code %d (%v), want %d\nstderr:\n%s", code, err, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantOut, stdout.String())
			}
		})
	}
}
