package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/pgtest"
)

// TestMain runs the tests, or, when the test binary is started as a child by
// a test (APP_TEST_MAIN=1), the real main: the tests then send it real signals.
func TestMain(m *testing.M) {
	if os.Getenv("APP_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(pgtest.Run(m))
}

// logLines collects JSON log lines written by the app and lets tests wait for one.
type logLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []map[string]any
	raw     bytes.Buffer
	changed chan struct{}
}

func newLogLines() *logLines { return &logLines{changed: make(chan struct{})} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var m map[string]any
		if json.Unmarshal(l.partial[:i], &m) == nil {
			l.lines = append(l.lines, m)
		}
		l.partial = l.partial[i+1:]
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// String is everything written so far.
func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// wait returns the first line for which match is true, waiting up to timeout.
func (l *logLines) wait(t *testing.T, timeout time.Duration, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, m := range l.lines {
			if match(m) {
				l.mu.Unlock()
				return m
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no log line %s within %v; log:\n%s", what, timeout, l.String())
			return nil
		}
	}
}

// find returns every line for which match is true.
func (l *logLines) find(match func(map[string]any) bool) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// inProcess is an app started by calling run.
type inProcess struct {
	URL    string
	Log    *logLines
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned
	err    error         // run's result, once done is closed
}

// stop cancels run's context (as SIGTERM does) and returns run's error.
func (a *inProcess) stop(t *testing.T) error {
	t.Helper()
	a.cancel()
	select {
	case <-a.done:
		return a.err
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return within 30s of the stop; log:\n%s", a.Log.String())
		return nil
	}
}

// testEnv is a complete environment for an app on a fresh database.
func testEnv(t *testing.T, dsn string) map[string]string {
	return map[string]string{
		"DATABASE_URL":     dsn,
		"APP_LISTEN":       "127.0.0.1:0",
		"SESSION_KEYS":     testKey1,
		"COOKIE_SECURE":    "false",
		"LOG_FORMAT":       "json",
		"SHUTDOWN_DELAY":   "0s",
		"SHUTDOWN_TIMEOUT": "5s",
	}
}

// startApp runs the app in-process and waits for its listening line.
func startApp(t *testing.T, env map[string]string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &inProcess{Log: newLogLines(), cancel: cancel, done: make(chan struct{})}
	var stderr bytes.Buffer
	go func() {
		defer close(a.done)
		a.err = run(ctx, []string{"app"}, envMap(env), a.Log, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		<-a.done
		if t.Failed() {
			t.Logf("app log:\n%s", a.Log.String())
		}
	})
	line := a.Log.wait(t, 20*time.Second, `msg="listening"`, func(m map[string]any) bool {
		return m["msg"] == "listening" && m["listener"] == "app"
	})
	a.URL = "http://" + line["addr"].(string)
	return a
}

// waitFor polls cond every 20 ms until it is true or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// postJSON posts body (JSON) to url with client and returns the answer's status.
func postJSON(t *testing.T, client *http.Client, url, body string) int {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signupLogin creates alice and logs client in as her.
func signupLogin(t *testing.T, client *http.Client, base string) {
	t.Helper()
	const cred = `{"username":"alice","password":"password1"}`
	for _, path := range []string{"/api/signup", "/api/login"} {
		if code := postJSON(t, client, base+path, cred); code/100 != 2 {
			t.Fatalf("POST %s: status %d", path, code)
		}
	}
}

// health returns the status field of /healthz and the HTTP status.
func health(client *http.Client, base string) (string, int, http.Header) {
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		return "error: " + err.Error(), 0, nil
	}
	defer resp.Body.Close()
	var body struct{ Status, Version, Instance string }
	json.NewDecoder(resp.Body).Decode(&body)
	return body.Status, resp.StatusCode, resp.Header
}

func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"app", "-version"}, envMap(nil), &out, &errOut); err != nil {
		t.Fatalf("run -version: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != version {
		t.Errorf("printed %q, want %q", got, version)
	}
}

func TestUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"app", "-nosuchflag"}, envMap(nil), &out, &errOut)
	if got := exitCode(err); got != 2 {
		t.Errorf("exit code = %d, want 2 (err %v)", got, err)
	}
	err = run(t.Context(), []string{"app", "extra"}, envMap(nil), &out, &errOut)
	if got := exitCode(err); got != 2 {
		t.Errorf("extra argument: exit code = %d, want 2 (err %v)", got, err)
	}
}

// TestSpoofedForwardedForIgnored checks the request log's client_ip: an
// X-Forwarded-For from a peer that is not a trusted proxy is ignored; from a
// trusted one it is believed.
func TestSpoofedForwardedForIgnored(t *testing.T) {
	dsn := pgtest.DSN(t)
	tests := []struct {
		name, trusted, want string
	}{
		{"untrusted peer", "10.9.9.9", "127.0.0.1"},
		{"trusted peer", "127.0.0.1/32", "203.0.113.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t, dsn)
			env["TRUSTED_PROXIES"] = tc.trusted
			a := startApp(t, env)
			req, _ := http.NewRequest("GET", a.URL+"/api/me", nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Request-ID", "spoof-"+strings.ReplaceAll(tc.name, " ", "-"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			line := a.Log.wait(t, 5*time.Second, "for the request", func(m map[string]any) bool {
				return m["msg"] == "request" && m["request_id"] == req.Header.Get("X-Request-ID")
			})
			if got := line["client_ip"]; got != tc.want {
				t.Errorf("client_ip = %v, want %s", got, tc.want)
			}
			for _, k := range []string{"method", "path", "status", "duration", "client_ip", "request_id"} {
				if _, ok := line[k]; !ok {
					t.Errorf("request line lacks %q: %v", k, line)
				}
			}
			if _, ok := line["duration"].(float64); !ok {
				t.Errorf("duration = %#v, want a number of seconds", line["duration"])
			}
		})
	}
}

// TestDatabaseDownAtStart starts the app while its PostgreSQL is stopped: it
// listens and answers degraded, then recovers by itself (migrations run in
// the background) once PostgreSQL is back.
func TestDatabaseDownAtStart(t *testing.T) {
	ctx := t.Context()
	c := pgtest.NewCluster(t, pgtest.ClusterOptions{Port: pgtest.FreePort(t)})
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop cluster: %v", err)
	}

	a := startApp(t, testEnv(t, c.DSN("postgres")))
	status, code, _ := health(http.DefaultClient, a.URL)
	if status != "degraded" || code != http.StatusServiceUnavailable {
		t.Fatalf("with PostgreSQL down: /healthz = %d %q, want 503 degraded", code, status)
	}
	if code := postJSON(t, http.DefaultClient, a.URL+"/api/signup", `{"username":"early","password":"password1"}`); code != http.StatusServiceUnavailable {
		t.Errorf("signup with PostgreSQL down: status %d, want 503", code)
	}
	// The app says why it is degraded, and that it keeps trying.
	a.Log.wait(t, 10*time.Second, "about the failed migration", func(m map[string]any) bool {
		return m["msg"] == "database migration failed; will retry" && m["transient"] == true &&
			m["level"] == "WARN" && m["retry_in"] != nil && m["attempt"] != nil
	})

	if err := c.Start(ctx); err != nil {
		t.Fatalf("restart cluster: %v", err)
	}
	waitFor(t, 30*time.Second, "/healthz ok after PostgreSQL came back", func() bool {
		status, code, _ := health(http.DefaultClient, a.URL)
		return status == "ok" && code == http.StatusOK
	})
	if code := postJSON(t, http.DefaultClient, a.URL+"/api/signup", `{"username":"later","password":"password1"}`); code != http.StatusCreated {
		t.Errorf("signup after recovery: status %d, want 201", code)
	}
	if err := a.stop(t); err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestRetryTimeoutWarning: the app cannot see lb's per_try_timeout, so a
// DB_RETRY_TIMEOUT at or above lb's default (5s) is logged as a warning at
// start; the default is not. The listening line shows the value in use.
func TestRetryTimeoutWarning(t *testing.T) {
	dsn := pgtest.DSN(t)
	warned := func(m map[string]any) bool {
		return m["level"] == "WARN" && strings.HasPrefix(m["msg"].(string), "DB_RETRY_TIMEOUT is not below")
	}
	a := startApp(t, testEnv(t, dsn))
	if got := a.Log.find(warned); len(got) != 0 {
		t.Errorf("default DB_RETRY_TIMEOUT: warning %v", got)
	}
	a.Log.wait(t, time.Second, "listening with db_retry_timeout 4s", func(m map[string]any) bool {
		return m["msg"] == "listening" && m["db_retry_timeout"] == "4s"
	})

	env := testEnv(t, dsn)
	env["DB_RETRY_TIMEOUT"] = "8s"
	b := startApp(t, env)
	line := b.Log.wait(t, time.Second, "the per_try_timeout warning", warned)
	if line["db_retry_timeout"] != "8s" {
		t.Errorf("warning line %v does not carry db_retry_timeout=8s", line)
	}
}

// TestDefaultInstance: without APP_INSTANCE the instance is hostname:port of
// the bound listener, in X-Instance, /healthz and every log line.
func TestDefaultInstance(t *testing.T) {
	a := startApp(t, testEnv(t, pgtest.DSN(t)))
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(a.URL, "http://"))
	want := host + ":" + port
	waitFor(t, 20*time.Second, "/healthz ok", func() bool { s, _, _ := health(http.DefaultClient, a.URL); return s == "ok" })
	resp, err := http.Get(a.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Instance string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Instance"); got != want || body.Instance != want {
		t.Errorf("X-Instance %q, /healthz instance %q; want %q", got, body.Instance, want)
	}
	if lines := a.Log.find(func(m map[string]any) bool { return m["instance"] != want }); len(lines) > 0 {
		t.Errorf("log lines without instance %q: %v", want, lines)
	}
}
