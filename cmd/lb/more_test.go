package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/lbtest"
)

func TestServeTrustedProxyKeepsChain(t *testing.T) {
	b := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For")+" id="+r.Header.Get("X-Request-ID"))
	})
	l := startLB(t, lbConfig{backends: []*testBackend{b}, extra: "trusted_proxies: [127.0.0.1/32]\n"})
	l.waitHealthy("app-1")
	_, body, h := l.get(t, "/p", http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Request-Id": {"abc-123"}})
	if body != "203.0.113.9, 127.0.0.1 id=abc-123" {
		t.Errorf("backend saw %q, want \"203.0.113.9, 127.0.0.1 id=abc-123\"", body)
	}
	if got := h.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("response X-Request-ID %q, want abc-123", got)
	}
	// The access line is written once the response is done: poll for it.
	lbtest.WaitFor(t, 5*time.Second, "an access log line with client_ip 203.0.113.9", func() bool {
		return strings.Contains(l.out.String(), `"client_ip":"203.0.113.9"`)
	})
}

// upgradeBackend answers an Upgrade request with 101 and then echoes lines.
func upgradeBackend(t *testing.T, name string) *testBackend {
	return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	})
}

func TestServeUpgradeAndCloseAtDrainTimeout(t *testing.T) {
	b := upgradeBackend(t, "app-1")
	dir := t.TempDir()
	writeFile(t, dir, "token", testToken)
	text := strings.Replace(lbConfig{dir: dir, backends: []*testBackend{b}}.render(), "drain_timeout: 5s", "drain_timeout: 300ms", 1)
	l := startLBFile(t, writeFile(t, dir, "lb.yaml", text))
	l.waitHealthy("app-1")

	c, err := net.Dial("tcp", l.addrs["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Bytes that look like a smuggled request pass untouched once upgraded.
	io.WriteString(c, "Content-Length: 1 Transfer-Encoding: chunked\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo Content-Length: 1 Transfer-Encoding: chunked\n" {
		t.Fatalf("echo: got %q, %v", line, err)
	}
	lbtest.WaitFor(t, 5*time.Second, "upgraded=1", func() bool {
		st, err := l.client.Backend(t.Context(), "app-1")
		return err == nil && st.Upgraded == 1
	})

	start := time.Now()
	if err := l.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Errorf("upgraded connection still open after shutdown")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown with a WebSocket took %s, want about drain_timeout", d)
	}
}

func TestServeMaxConns(t *testing.T) {
	b := newBackend(t, "app-1", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b}, extra: "limits:\n  max_conns: 1\n"})
	l.waitHealthy("app-1")
	req := "GET /m HTTP/1.1\r\nHost: a\r\n\r\n"
	first, err := net.Dial("tcp", l.addrs["http"])
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(first, req)
	br1 := bufio.NewReader(first)
	first.SetDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(br1, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v %v", resp, err)
	}
	second, err := net.Dial("tcp", l.addrs["http"]) // the kernel accepts; lb does not yet
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, req)
	br2 := bufio.NewReader(second)
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := br2.ReadByte(); err == nil {
		t.Fatalf("second connection answered while max_conns=1 was in use")
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(br2, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("second connection after the first closed: %v %v", resp, err)
	}
}

func TestServeSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock) // read by go-systemd from the process environment
	b := newBackend(t, "app-1", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b}})
	buf := make([]byte, 256)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify: got %q, %v; want READY=1", buf[:n], err)
	}
	l.stop()
	n, err = conn.Read(buf)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Errorf("notify at stop: got %q, %v; want STOPPING=1", buf[:n], err)
	}
}

// TestServeSIGHUP sends a real SIGHUP to the test process while serve listens for it.
func TestServeSIGHUP(t *testing.T) {
	b1 := newBackend(t, "app-1", nil)
	b2 := newBackend(t, "app-2", nil)
	dir := t.TempDir()
	writeFile(t, dir, "token", testToken)
	cfgPath := writeFile(t, dir, "lb.yaml", lbConfig{dir: dir, backends: []*testBackend{b1}}.render())
	l := startLBWith(t, cfgPath, false, nil)
	if err := os.WriteFile(cfgPath, []byte(lbConfig{dir: dir, backends: []*testBackend{b1, b2}}.render()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-l.reloads:
		if err != nil {
			t.Fatalf("reload on SIGHUP: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after SIGHUP")
	}
	if _, err := l.client.Backend(t.Context(), "app-2"); err != nil {
		t.Errorf("app-2 after SIGHUP: %v", err)
	}
}

func TestServeReloadToken(t *testing.T) {
	b := newBackend(t, "app-1", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b}})
	dir := dirOf(l.cfgPath)
	writeFile(t, dir, "token", "the-new-token-0123456789\n")
	if err := l.doReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	var apiErr *admin.APIError
	if _, err := l.client.Backends(t.Context()); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("old token after reload: got %v, want 401", err)
	}
	c := &admin.Client{BaseURL: l.client.BaseURL, Token: "the-new-token-0123456789"}
	if _, err := c.Backends(t.Context()); err != nil {
		t.Errorf("new token after reload: %v", err)
	}
	// A token file others can read is refused, and the running token stays.
	if err := os.Chmod(filepath.Join(dir, "token"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.doReload(); err == nil {
		t.Errorf("reload with a world-readable token file: got nil error")
	}
	if _, err := c.Backends(t.Context()); err != nil {
		t.Errorf("token after a refused reload: %v", err)
	}
}

func TestServeRemovePastDrainTimeout(t *testing.T) {
	b, started := stuckBackend(t, "app-1")
	l := startLB(t, lbConfig{backends: []*testBackend{b}, drain: "300ms"})
	l.waitHealthy("app-1")
	l.getInBackground("/stuck")
	<-started
	start := time.Now()
	if err := l.client.Remove(t.Context(), "app-1"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("remove took %s, want about drain_timeout (300ms)", d)
	}
	out := l.out.String()
	if !strings.Contains(out, `"drain_timed_out":true`) || !strings.Contains(out, `"cut":1`) {
		t.Errorf("removal past drain_timeout not logged with what was cut")
	}
}

func TestServeDamagedStateFile(t *testing.T) {
	b := newBackend(t, "app-1", nil)
	dir := t.TempDir()
	statePath := writeFile(t, dir, "state.json", "{not json")
	l := startLB(t, lbConfig{dir: dir, backends: []*testBackend{b}, extra: "state_file: " + statePath + "\n"})
	if !strings.Contains(l.out.String(), "state file unreadable") {
		t.Errorf("a damaged state file is not logged")
	}
	l.waitHealthy("app-1")
	if code, _, _ := l.get(t, "/", nil); code != 200 {
		t.Errorf("with a damaged state file: got %d, want 200", code)
	}
	// It is rewritten whole at start.
	data, err := os.ReadFile(statePath)
	if err != nil || !strings.Contains(string(data), `"app-1": "active"`) {
		t.Errorf("state file after start: %q, %v", data, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
