package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinary builds lb with a version and runs it as a real process:
// -version, exit 2 for a bad config, listening lines, SIGHUP reload, SIGTERM exit 0.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "lb")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v-test-1", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil || string(out) != "lb v-test-1\n" {
		t.Errorf("lb -version: got %q, %v", out, err)
	}

	writeFile(t, dir, "token", testToken)
	bad := writeFile(t, dir, "bad.yaml", "listen: 127.0.0.1:0\npolicy: nope\nadmin:\n  token_file: "+filepath.Join(dir, "token")+"\n")
	err = exec.Command(bin, "serve", "-config", bad).Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
		t.Errorf("serve with a bad config: got %v, want exit status 2", err)
	}

	b := newBackend(t, "app-1", nil)
	cfg := writeFile(t, dir, "lb.yaml", lbConfig{dir: dir, backends: []*testBackend{b}}.render())
	cmd := exec.Command(bin, "serve", "-config", cfg)
	cmd.Env = append(os.Environ(), "LOG_FORMAT=json", "NOTIFY_SOCKET=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitLine := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("lb exited before logging %q", msg)
				}
				if m["msg"] == msg {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q line", msg)
			}
		}
	}
	seen := map[string]string{}
	for len(seen) < 2 {
		m := waitLine("listening")
		addr, _ := m["addr"].(string)
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Errorf("listening addr %q, want the bound address", addr)
		}
		seen[m["listener"].(string)] = addr
	}
	if seen["http"] == "" || seen["admin"] == "" {
		t.Errorf("listeners: %v, want http and admin", seen)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLine("config reloaded")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine("stopped")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("lb after SIGTERM: %v, want exit status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lb did not exit after SIGTERM")
	}
}
