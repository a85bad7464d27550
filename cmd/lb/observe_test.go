package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// scrape returns the admin listener's /metrics text.
func (l *runningLB) scrape(t *testing.T) string {
	t.Helper()
	return scrapeAddr(t, l.addrs["admin"])
}

// scrapeAddr returns the /metrics text of the admin listener at addr.
func scrapeAddr(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// seriesLabels returns, for each lb_ metric in a scrape, the sorted label names of its series.
func seriesLabels(text string) map[string][]string {
	re := regexp.MustCompile(`^(lb_[a-z_]+?)(_bucket|_sum|_count)?(\{([^}]*)\})? `)
	names := regexp.MustCompile(`([a-z_]+)="`)
	out := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for _, n := range names.FindAllStringSubmatch(m[4], -1) {
			if n[1] != "le" {
				labels = append(labels, n[1])
			}
		}
		slices.Sort(labels)
		out[m[1]] = labels
	}
	return out
}

// The metrics are DESIGN's names and labels; client-sent hosts, paths and
// methods never become label values; a removed backend's series go away.
func TestServeMetrics(t *testing.T) {
	b1 := newBackend(t, "app-1", nil)
	b2 := newBackend(t, "app-2", nil)
	l := startLB(t, lbConfig{backends: []*testBackend{b1, b2}})
	l.waitHealthy("app-1", "app-2")
	for i := range 6 {
		req, err := http.NewRequest("BREW", "http://"+l.addrs["http"]+"/secret-path-"+string(rune('a'+i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "client-host.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	text := l.scrape(t)
	got := seriesLabels(text)
	want := map[string][]string{
		"lb_requests_total":               {"backend", "code"},
		"lb_request_duration_seconds":     {"backend"},
		"lb_backend_up":                   {"backend"},
		"lb_backend_in_flight":            {"backend"},
		"lb_backend_draining":             {"backend"},
		"lb_retries_total":                {"reason"},
		"lb_retry_budget_exhausted_total": nil,
		"lb_health_checks_total":          {"backend", "result"},
		"lb_build_info":                   {"version"},
	}
	for name, labels := range want {
		l, ok := got[name]
		if !ok {
			t.Errorf("metric %s missing", name)
			continue
		}
		if !slices.Equal(l, labels) {
			t.Errorf("metric %s: got labels %q, want %q", name, l, labels)
		}
	}
	for _, leak := range []string{"secret-path", "client-host", "BREW"} {
		if strings.Contains(text, leak) {
			t.Errorf("a client-sent value (%s) appears in the metrics", leak)
		}
	}
	if !strings.Contains(text, `backend="app-2"`) {
		t.Fatalf("no series for app-2 before its removal")
	}
	if err := l.client.Remove(context.Background(), "app-2"); err != nil {
		t.Fatal(err)
	}
	// The checker drops its series when it syncs after the removal.
	lbtest.WaitFor(t, 5*time.Second, "app-2's series to go", func() bool {
		return !strings.Contains(l.scrape(t), `backend="app-2"`)
	})
}

// The access line has DESIGN's fields, and a client that went away is
// logged as 499 and not counted against the backend.
func TestServeAccessLog(t *testing.T) {
	hold := make(chan struct{})
	started := make(chan struct{}, 1)
	b := newBackend(t, "app-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			started <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "ok")
	})
	defer close(hold)
	l := startLB(t, lbConfig{backends: []*testBackend{b}})
	l.waitHealthy("app-1")
	l.get(t, "/logged?q=1", http.Header{"X-Request-Id": {"req-42"}})

	// A client that leaves while its request waits on the backend.
	c, err := net.Dial("tcp", l.addrs["http"])
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: a\r\nX-Request-Id: gone-1\r\n\r\n")
	<-started
	c.Close()

	line := func(id string) map[string]any {
		var found map[string]any
		lbtest.WaitFor(t, 5*time.Second, "the access line of "+id, func() bool {
			sc := bufio.NewScanner(strings.NewReader(l.out.String()))
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "request" && m["request_id"] == id {
					found = m
					return true
				}
			}
			return false
		})
		return found
	}
	m := line("req-42")
	for _, k := range []string{"method", "path", "status", "duration", "client_ip", "request_id", "backend", "attempts"} {
		if _, ok := m[k]; !ok {
			t.Errorf("access line lacks %q: %v", k, m)
		}
	}
	if m["status"] != 200.0 || m["backend"] != "app-1" || m["attempts"] != 1.0 || m["client_ip"] != "127.0.0.1" || m["path"] != "/logged" {
		t.Errorf("access line: got %v", m)
	}
	if _, ok := m["duration"].(float64); !ok {
		t.Errorf("duration: got %T %v, want seconds as a number", m["duration"], m["duration"])
	}
	if gone := line("gone-1"); gone["status"] != 499.0 {
		t.Errorf("client that went away: got status %v, want 499", gone["status"])
	}
	st, err := l.client.Backend(context.Background(), "app-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Failures != 0 || !st.Healthy {
		t.Errorf("after a client left: app-1 failures=%d healthy=%v, want 0 and healthy", st.Failures, st.Healthy)
	}
}
