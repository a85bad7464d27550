package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// healthBackend is a backend of the given lbtest.Health* kind, named name.
func healthBackend(t *testing.T, name, kind string) *testBackend {
	t.Helper()
	return &testBackend{name: name, srv: &httptest.Server{URL: lbtest.HealthBackend(t, kind)}}
}

// waitChecked waits until every backend of l has been health-checked twice since now, so
// that /readyz reflects what the checks found rather than lb's state at start.
func (l *runningLB) waitChecked(t *testing.T) {
	t.Helper()
	since := time.Now()
	seen := map[string]int{}
	last := map[string]time.Time{}
	lbtest.WaitFor(t, 10*time.Second, "two health checks of every backend", func() bool {
		list, err := l.client.Backends(context.Background())
		if err != nil {
			return false
		}
		done := true
		for _, b := range list {
			if b.LastCheck.After(since) && !b.LastCheck.Equal(last[b.Name]) {
				seen[b.Name]++
				last[b.Name] = b.LastCheck
			}
			if seen[b.Name] < 2 {
				done = false
			}
		}
		return done
	})
}

// TestServeReadyz runs a real lb over real backends in each state /readyz tells apart, and
// asks it through GET /readyz and `lb ready`.
func TestServeReadyz(t *testing.T) {
	tests := []struct {
		name  string
		kinds []string
		drain []string // drained through the admin API
		want  string
	}{
		{"healthy backend", []string{"ok", "closed"}, nil, "ready"},
		{"no backends", nil, nil, "no_backends"},
		{"every backend refuses", []string{"closed", "closed"}, nil, "no_backends"},
		{"every backend times out", []string{"frozen", "frozen"}, nil, "no_backends"},
		{"every backend drained", []string{"ok", "ok"}, []string{"app-1", "app-2"}, "no_backends"},
		{"fail-open: unhealthy but answering", []string{"fail", "degraded"}, nil, "ready"},
		{"fail-open: every backend answers draining", []string{"draining", "draining"}, nil, "ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var backends []*testBackend
			for i, kind := range tt.kinds {
				backends = append(backends, healthBackend(t, fmt.Sprintf("app-%d", i+1), kind))
			}
			// fall 2 and a 300 ms timeout: one check slowed by a busy machine does not
			// flip a healthy backend (the test waits for two checks of each).
			l := startLB(t, lbConfig{backends: backends,
				health: "  interval: 300ms\n  timeout: 300ms\n  rise: 1\n  fall: 2\n"})
			for _, n := range tt.drain {
				if _, err := l.client.Drain(context.Background(), n); err != nil {
					t.Fatal(err)
				}
			}
			l.waitChecked(t)
			wantCode := http.StatusServiceUnavailable
			if tt.want == "ready" {
				wantCode = http.StatusOK
			}
			code, body := l.readyz(t)
			if code != wantCode || body != `{"status":"`+tt.want+`"}` {
				t.Errorf("GET /readyz: %d %s, want %d {\"status\":%q}", code, body, wantCode, tt.want)
			}
			wantMetric := 0.0
			if tt.want == "ready" {
				wantMetric = 1
			}
			if v, ok := metricValue(t, l.addrs["admin"], "lb_ready"); !ok || v != wantMetric {
				t.Errorf("lb_ready = %v (present %t), want %v: the metric follows /readyz", v, ok, wantMetric)
			}
			// An answer while not ready closes its connection, so that a client reconnects (to
			// the other lb of a pair, once the address has moved); while ready it is kept.
			// (Not asked of frozen backends: the answer would take per_try_timeout.)
			if !slices.Contains(tt.kinds, "frozen") {
				resp, err := http.Get("http://" + l.addrs["http"] + "/")
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.Close != (tt.want != "ready") {
					t.Errorf("GET / (%d): Connection: close %t, want %t while /readyz says %s", resp.StatusCode, resp.Close, tt.want != "ready", tt.want)
				}
			}
			out, errOut, exit := runCLI(t, nil, "ready", "-admin", "http://"+l.addrs["admin"])
			wantExit := 1
			if tt.want == "ready" {
				wantExit = 0
			}
			if exit != wantExit || !strings.Contains(out+errOut, tt.want) || strings.Count(out+errOut, "\n") != 1 {
				t.Errorf("lb ready: exit %d, output %q; want exit %d and one line saying %s", exit, out+errOut, wantExit, tt.want)
			}
		})
	}
}

// TestServeReadyzNotLogged: keepalived polls /readyz every second; lb logs its changes, not
// each poll.
func TestServeReadyzNotLogged(t *testing.T) {
	b := healthBackend(t, "app-1", "closed")
	l := startLB(t, lbConfig{backends: []*testBackend{b}})
	l.waitChecked(t)
	for range 5 {
		if code, _ := l.readyz(t); code != http.StatusServiceUnavailable {
			t.Fatalf("GET /readyz: %d, want 503", code)
		}
	}
	if n := l.out.Count(`"path":"/readyz"`); n != 0 {
		t.Errorf("%d request lines for /readyz, want none", n)
	}
	if !l.out.HasLine(`"msg":"readiness changed"`, `"to":"no_backends"`) || l.out.Count(`"msg":"readiness changed"`) != 1 {
		t.Errorf("want exactly one readiness change logged:\n%s", l.out.String())
	}
}

// TestReadyCommand covers `lb ready`'s ways of finding the admin API and its exit statuses.
func TestReadyCommand(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _ := lbtest.SelfSigned(t, dir, 7, time.Hour, "lb-admin.test")
	plain := startLB(t, lbConfig{backends: []*testBackend{newBackend(t, "app-1", nil)}})
	secure := startLB(t, lbConfig{dir: dir, backends: []*testBackend{newBackend(t, "app-1", nil)},
		adminPart: "  cert_file: " + certPath + "\n  key_file: " + keyPath + "\n"})
	plain.waitHealthy("app-1")
	lbtest.WaitFor(t, 10*time.Second, "the lb with an HTTPS admin listener to be ready", func() bool {
		_, _, exit := runCLI(t, nil, "ready", "-admin", "https://"+secure.addrs["admin"], "-ca-file", certPath)
		return exit == 0
	})
	plainURL := "http://" + plain.addrs["admin"]
	_, plainPort, _ := net.SplitHostPort(plain.addrs["admin"])

	// Config files as an operator's check script would read them: admin.listen, TLS by cert_file.
	cfgDir := t.TempDir()
	cfgPlain := writeFile(t, cfgDir, "plain.yaml", "listen: :443\nadmin:\n  listen: "+plain.addrs["admin"]+"\n  token_file: /nowhere\nfuture_key: lenient\n")
	cfgAny := writeFile(t, cfgDir, "any.yaml", "admin:\n  listen: \"0.0.0.0:"+plainPort+"\"\n")
	cfgTLS := writeFile(t, cfgDir, "tls.yaml", "admin:\n  listen: "+secure.addrs["admin"]+"\n  cert_file: "+certPath+"\n  key_file: "+keyPath+"\n")

	// A listener that accepts and never answers, as a frozen lb's kernel does.
	frozen, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { frozen.Close() })
	dead := healthBackend(t, "dead", "closed").srv.URL

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantExit int
		want     string
	}{
		{"-admin", nil, []string{"-admin", plainURL}, 0, plainURL + " ready"},
		{"LB_ADMIN with one lb", map[string]string{"LB_ADMIN": plainURL}, nil, 0, plainURL + " ready"},
		{"-admin wins over LB_ADMIN", map[string]string{"LB_ADMIN": dead}, []string{"-admin", plainURL}, 0, "ready"},
		{"-config", nil, []string{"-config", cfgPlain}, 0, plainURL + " ready"},
		{"-config on every interface", nil, []string{"-config", cfgAny}, 0, "http://127.0.0.1:" + plainPort + " ready"},
		{"-config with admin TLS", nil, []string{"-config", cfgTLS}, 0, "https://" + secure.addrs["admin"] + " ready"},
		{"https without the CA", nil, []string{"-admin", "https://" + secure.addrs["admin"]}, 1, "certificate"},
		{"https with -ca-file", nil, []string{"-admin", "https://" + secure.addrs["admin"], "-ca-file", certPath}, 0, "ready"},
		{"connection refused", nil, []string{"-admin", dead}, 1, "not ready: unreachable"},
		{"no answer", nil, []string{"-admin", "http://" + frozen.Addr().String(), "-timeout", "200ms"}, 1, "not ready: no answer within 200ms"},
		{"not lb", nil, []string{"-admin", newBackend(t, "x", nil).srv.URL}, 1, "not ready"},
		{"an argument", nil, []string{"-admin", plainURL, "extra"}, 2, "no arguments"},
		{"zero timeout", nil, []string{"-timeout", "0s"}, 2, "-timeout"},
		{"-admin and -config", nil, []string{"-admin", plainURL, "-config", cfgPlain}, 2, "not both"},
		{"bad -admin", nil, []string{"-admin", "127.0.0.1:9000"}, 2, "http://"},
		{"bad LB_ADMIN", map[string]string{"LB_ADMIN": plainURL + ",,"}, nil, 2, "empty"},
		{"missing config", nil, []string{"-config", filepath.Join(cfgDir, "nope.yaml")}, 2, "read config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, errOut, exit := runCLI(t, tt.env, append([]string{"ready"}, tt.args...)...)
			if exit != tt.wantExit || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("lb ready %v: exit %d, output %q; want exit %d with %q", tt.args, exit, out+errOut, tt.wantExit, tt.want)
			}
			if tt.wantExit == 1 && (out != "" || strings.Count(errOut, "\n") != 1) {
				t.Errorf("not ready: stdout %q, stderr %q; want one line on stderr", out, errOut)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("lb ready took %s", took)
			}
		})
	}
}

func TestReadyTarget(t *testing.T) {
	tests := []struct {
		name   string
		flag   string
		lbEnv  string
		want   string
		errHas string
	}{
		{"default", "", "", defaultReadyAdmin, ""},
		{"flag", "http://10.0.0.1:9000/", "", "http://10.0.0.1:9000", ""},
		{"one lb in LB_ADMIN", "", " https://lb-a:9000 ", "https://lb-a:9000", ""},
		{"a pair in LB_ADMIN: this host's default", "", "https://lb-a:9000,https://lb-b:9000", defaultReadyAdmin, ""},
		{"bad LB_ADMIN", "", "lb-a:9000", "", "want http://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cas []string
			got, err := readyTarget(tt.flag, "", func(string) string { return tt.lbEnv }, &cas)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("got %q, %v; want an error with %q", got, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
