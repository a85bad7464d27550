package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildLB builds lb with version v into a temporary directory and returns its path.
func buildLB(t *testing.T, v string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lb")
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lbProcess is `lb serve` running as a real process, its JSON log lines read as they come
// (all of them, so that a busy access log never blocks lb on a full pipe).
type lbProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	exited chan error
	addrs  map[string]string // listener name -> bound address, once startProcess returns

	mu     sync.Mutex
	lines  []map[string]any
	closed bool // stdout ended
	next   int  // waitLine's cursor in lines
}

// startProcess runs `bin serve -config cfg` and waits for its http and admin listeners.
func startProcess(t *testing.T, bin, cfg string) *lbProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-config", cfg)
	cmd.Env = append(os.Environ(), "LOG_FORMAT=json", "NOTIFY_SOCKET=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &lbProcess{t: t, cmd: cmd, exited: make(chan error, 1), addrs: map[string]string{}}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.mu.Lock()
				p.lines = append(p.lines, m)
				p.mu.Unlock()
			}
		}
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for len(p.addrs) < 2 {
		m := p.waitLine("listening")
		addr, _ := m["addr"].(string)
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Errorf("listening addr %q, want the bound address", addr)
		}
		p.addrs[m["listener"].(string)] = addr
	}
	if p.addrs["http"] == "" || p.addrs["admin"] == "" {
		t.Fatalf("listeners: %v, want http and admin", p.addrs)
	}
	return p
}

// waitLine returns the next log line (after the one it returned last) whose msg is msg.
func (p *lbProcess) waitLine(msg string) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		for ; p.next < len(p.lines); p.next++ {
			if m := p.lines[p.next]; m["msg"] == msg {
				p.next++
				p.mu.Unlock()
				return m
			}
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			p.t.Fatalf("lb exited before logging %q", msg)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q line", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *lbProcess) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// waitExit waits for the process to exit and fails unless its status is 0.
func (p *lbProcess) waitExit(within time.Duration) {
	p.t.Helper()
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Errorf("lb: %v, want exit status 0", err)
		}
	case <-time.After(within):
		p.t.Fatalf("lb did not exit within %s", within)
	}
}

// TestBinary builds lb with a version and runs it as a real process:
// -version, exit 2 for a bad config, listening lines, SIGHUP reload, SIGTERM exit 0.
func TestBinary(t *testing.T) {
	bin := buildLB(t, "v-test-1")
	dir := t.TempDir()
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
	p := startProcess(t, bin, cfg)
	p.signal(syscall.SIGHUP)
	p.waitLine("config reloaded")
	p.signal(syscall.SIGTERM)
	p.waitLine("stopped")
	p.waitExit(10 * time.Second)
}
