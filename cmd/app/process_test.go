package main

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"outrigger/internal/pgtest"
)

// child is the app running as a real process (this test binary re-executing main).
type child struct {
	cmd    *exec.Cmd
	log    *logLines
	stderr *bytes.Buffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startChild starts main in a child process with exactly env (plus APP_TEST_MAIN).
func startChild(t *testing.T, env map[string]string, args ...string) *child {
	t.Helper()
	c := &child{log: newLogLines(), stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], args...)
	c.cmd.Env = []string{"APP_TEST_MAIN=1", "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Stdout = c.log
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start app process: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("app stdout:\n%s\napp stderr:\n%s", c.log.String(), c.stderr.String())
		}
	})
	return c
}

// wait waits up to timeout for the process to exit and returns its exit code.
func (c *child) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		t.Fatalf("app process still running after %v", timeout)
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	if c.err != nil {
		t.Fatalf("wait: %v", c.err)
	}
	return 0
}

// TestBadEnvironmentExitStatus: a configuration error is one line on stderr
// naming the variable, and exit status 2.
func TestBadEnvironmentExitStatus(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no DATABASE_URL", map[string]string{"SESSION_KEYS": testKey1}, "DATABASE_URL"},
		{"short SESSION_KEYS", map[string]string{"DATABASE_URL": "postgres://127.0.0.1/x", "SESSION_KEYS": "short"}, "SESSION_KEYS"},
		{"placeholder SESSION_KEYS", map[string]string{"DATABASE_URL": "postgres://127.0.0.1/x",
			"SESSION_KEYS": "CHANGE-ME-to-at-least-32-random-characters-000000"}, "SESSION_KEYS"},
		{"bad SHUTDOWN_DELAY", map[string]string{"DATABASE_URL": "postgres://127.0.0.1/x", "SESSION_KEYS": testKey1, "SHUTDOWN_DELAY": "5"}, "SHUTDOWN_DELAY"},
		{"bad TRUSTED_PROXIES", map[string]string{"DATABASE_URL": "postgres://127.0.0.1/x", "SESSION_KEYS": testKey1, "TRUSTED_PROXIES": "lb"}, "TRUSTED_PROXIES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startChild(t, tc.env)
			if code := c.wait(t, 30*time.Second); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			msg := strings.TrimSpace(c.stderr.String())
			if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "app: "+tc.want+": ") {
				t.Errorf("stderr %q, want one line starting %q", msg, "app: "+tc.want+": ")
			}
		})
	}
}

func TestVersionProcess(t *testing.T) {
	c := startChild(t, nil, "-version")
	if code := c.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	if got := strings.TrimSpace(c.log.String()); got != version {
		t.Errorf("printed %q, want %q", got, version)
	}
}

// notifySocket listens where the app sends its sd_notify messages.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 10)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

func wantNotify(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	select {
	case m := <-msgs:
		if m != want {
			t.Errorf("sd_notify %q, want %q", m, want)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no sd_notify %q within 10s", want)
	}
}

// TestSIGTERM sends a real SIGTERM to a real app process: /healthz says
// draining at once, answers carry Connection: close during SHUTDOWN_DELAY, a
// request in flight (a slow upload) completes, and the exit status is 0.
func TestSIGTERM(t *testing.T) {
	const delay = 2 * time.Second
	env := testEnv(t, pgtest.DSN(t))
	env["SHUTDOWN_DELAY"] = delay.String()
	env["SHUTDOWN_TIMEOUT"] = "20s"
	sock, notes := notifySocket(t)
	env["NOTIFY_SOCKET"] = sock
	c := startChild(t, env)
	line := c.log.wait(t, 30*time.Second, `msg="listening"`, func(m map[string]any) bool { return m["msg"] == "listening" })
	base := "http://" + line["addr"].(string)
	wantNotify(t, notes, "READY=1")

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	waitFor(t, 30*time.Second, "/healthz ok", func() bool { s, _, _ := health(client, base); return s == "ok" })
	signupLogin(t, client, base)

	// An upload whose body the test sends slowly, so that it is in flight
	// across the whole shutdown.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	uploadDone := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/api/files", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("upload: %v", err)
			uploadDone <- nil
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		uploadDone <- resp
	}()
	part, _ := mw.CreateFormFile("file", "slow.bin")
	part.Write(bytes.Repeat([]byte("a"), 100<<10))

	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, delay/2, "/healthz draining right after SIGTERM", func() bool {
		s, code, _ := health(client, base)
		return s == "draining" && code == http.StatusServiceUnavailable
	})
	wantNotify(t, notes, "STOPPING=1")
	resp, err := client.Get(base + "/api/me")
	if err != nil {
		t.Fatalf("request during the delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("during the delay: /api/me = %d, Close=%v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}

	c.log.wait(t, delay+10*time.Second, `msg="shutting down"`, func(m map[string]any) bool { return m["msg"] == "shutting down" })
	if d := time.Since(start); d < delay {
		t.Errorf("shutdown began %v after SIGTERM, want at least SHUTDOWN_DELAY %v", d, delay)
	}
	// The upload is still in flight: finish it.
	part.Write(bytes.Repeat([]byte("b"), 100<<10))
	mw.Close()
	pw.Close()
	select {
	case resp := <-uploadDone:
		if resp == nil || resp.StatusCode != http.StatusCreated {
			t.Errorf("upload in flight across the shutdown: %v, want 201", resp)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("upload did not finish")
	}
	if code := c.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; stderr %q", code, c.stderr.String())
	}
	c.log.wait(t, time.Second, `msg="stopped"`, func(m map[string]any) bool { return m["msg"] == "stopped" })
}
