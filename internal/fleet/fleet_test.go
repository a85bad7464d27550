package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if ok, code := fakeMain(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// fakeBinaries links this test binary as app-v1, app-v2 and lb.
func fakeBinaries(t *testing.T) (v1, v2, lb string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []string{"app-v1", "app-v2", "lb"} {
		if err := os.Symlink(self, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "app-v1"), filepath.Join(dir, "app-v2"), filepath.Join(dir, "lb")
}

func startFake(t *testing.T, opts Options) *Fleet {
	t.Helper()
	v1, v2, lb := fakeBinaries(t)
	opts.AppBinary, opts.LBBinary = v1, lb
	opts.AppVersions = map[string]string{"v2": v2}
	opts.AppEnv = append(opts.AppEnv, "FLEET_FAKE=app")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	f, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var buf bytes.Buffer
			f.DumpLogs(&buf, 50)
			t.Log(buf.String())
		}
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// me fetches /api/me through lb and returns the answering instance.
func me(t *testing.T, f *Fleet, c *http.Client) string {
	t.Helper()
	body, _, err := Get(t.Context(), c, f.URL()+"/api/me", http.StatusOK)
	if err != nil {
		t.Fatalf("GET /api/me: %v", err)
	}
	var m struct{ Instance, Version string }
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return m.Instance
}

func TestFleetProcesses(t *testing.T) {
	f := startFake(t, Options{Apps: 3, DatabaseURL: "none", Dir: t.TempDir()})
	ctx := t.Context()

	if !strings.HasPrefix(f.URL(), "https://127.0.0.1:") || !strings.HasPrefix(f.AdminURL(), "http://127.0.0.1:") {
		t.Errorf("got URL %q admin %q, want loopback https and http", f.URL(), f.AdminURL())
	}
	st, err := os.Stat(f.TokenFile())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("token file mode: got %v, want 0600", got)
	}

	c := f.Client(ClientOptions{})
	seen := map[string]bool{}
	for range 6 {
		seen[me(t, f, c)] = true
	}
	if len(seen) != 3 {
		t.Errorf("instances answering through lb: got %v, want app-1..3", seen)
	}

	// Request lines by request id, from lb and the app.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL()+"/api/me", nil)
	req.Header.Set("X-Request-ID", "fleet-test-1")
	if _, _, err := Do(c, req, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	lines, err := f.RequestLines("fleet-test-1")
	if err != nil {
		t.Fatal(err)
	}
	procs := map[string]bool{}
	for _, l := range lines["fleet-test-1"] {
		procs[l.Proc] = true
	}
	if len(procs) != 2 || !procs["lb"] {
		t.Errorf("request lines for fleet-test-1: got processes %v, want lb and one app", procs)
	}

	// kill -9, then the same address again.
	addr := f.App(0).Addr("app")
	pid := f.App(0).Pid()
	if err := f.Kill(0); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := f.App(0).ExitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("exit after Kill: got %v, want killed by SIGKILL", err)
	}
	if f.App(0).Running() || syscall.Kill(pid, 0) == nil {
		t.Errorf("pid %d still running after Kill", pid)
	}
	if err := f.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.App(0).Addr("app"); got != addr {
		t.Errorf("address after Restart: got %s, want %s", got, addr)
	}

	// SIGSTOP and SIGCONT.
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	if st, _ := procState(f.App(1).Pid()); st != 'T' {
		t.Errorf("state after Stop: got %c, want T", st)
	}
	if err := f.Cont(1); err != nil {
		t.Fatal(err)
	}

	// Restart through the control socket, as `lb rollout` runs it, with version v2.
	var out bytes.Buffer
	getenv := func(k string) string {
		if k == "LB_BACKEND_NAME" {
			return "app-3"
		}
		return ""
	}
	if err := RestartCommand(ctx, []string{f.ControlSocket(), "v2"}, getenv, &out); err != nil {
		t.Fatalf("RestartCommand: %v", err)
	}
	if !strings.Contains(out.String(), "app-3 restarted") {
		t.Errorf("RestartCommand output: got %q", out.String())
	}
	if err := f.Admin().WaitFor(ctx, func(bs []Backend) bool {
		b, ok := findBackend(bs, "app-3")
		return ok && b.Version == "v2" && b.Healthy
	}); err != nil {
		t.Fatal(err)
	}
	if err := RestartCommand(ctx, []string{f.ControlSocket(), "v9"}, getenv, &out); err == nil || !strings.Contains(err.Error(), `no app version "v9"`) {
		t.Errorf("RestartCommand with an unknown version: got %v, want an error naming it", err)
	}

	// SIGTERM: a clean exit.
	if err := f.Term(2); err != nil {
		t.Fatal(err)
	}
	if err := f.App(2).Wait(ctx); err != nil {
		t.Errorf("exit after SIGTERM: got %v, want status 0", err)
	}

	pids := []int{f.LB().Pid(), f.App(0).Pid(), f.App(1).Pid()}
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d still alive after Close", pid)
		}
	}
}

// TestFleetStartsPostgreSQL starts a throwaway cluster, which the fake apps connect to.
func TestFleetStartsPostgreSQL(t *testing.T) {
	f := startFake(t, Options{Apps: 1})
	if f.Cluster() == nil {
		t.Fatal("got no cluster, want a throwaway one")
	}
	dir := f.Cluster().Dir()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s after Close: got %v, want it removed", dir, err)
	}
}

func TestStartFailsWhenAnAppCannotStart(t *testing.T) {
	v1, _, lb := fakeBinaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// DATABASE_URL points nowhere: the fake app exits at once.
	_, err := Start(ctx, Options{AppBinary: v1, LBBinary: lb, Apps: 1, DatabaseURL: "postgres://127.0.0.1:1/x?connect_timeout=1", AppEnv: []string{"FLEET_FAKE=app"}})
	if err == nil || !strings.Contains(err.Error(), "app-1 exited before listening") {
		t.Errorf("Start: got %v, want app-1 exited before listening", err)
	}
}

// TestControlSocketLongDir: a fleet directory too deep for a unix socket path gets
// its control socket elsewhere, removed on Close.
func TestControlSocketLongDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := startFake(t, Options{Apps: 1, DatabaseURL: "none", Dir: dir})
	sock := f.ControlSocket()
	if strings.HasPrefix(sock, dir) || len(sock) > 100 {
		t.Errorf("control socket %s: want a short path outside %s", sock, dir)
	}
	var out bytes.Buffer
	getenv := func(string) string { return "app-1" }
	if err := RestartCommand(t.Context(), []string{sock, ""}, getenv, &out); err != nil {
		t.Fatalf("RestartCommand: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("control socket dir after Close: got %v, want it removed", err)
	}
}
