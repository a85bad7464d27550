package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/fleet"
)

// TestRealClientIP is DESIGN's acceptance bar 2: clients from 127.0.0.2, .3, ...,
// some forging X-Forwarded-For, Forwarded or X-Real-IP, are logged by lb and by the
// app with their true source address, for every request id.
func TestRealClientIP(t *testing.T) {
	f := startFleet(t, fleet.Options{Apps: 2}, false)
	ctx := t.Context()

	forgeries := []struct {
		name   string
		header http.Header
	}{
		{"honest", nil},
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"203.0.113.7"}}},
		{"X-Forwarded-For chain, two lines", http.Header{"X-Forwarded-For": {"203.0.113.7, 127.0.0.1", "127.0.0.1"}}},
		{"Forwarded", http.Header{"Forwarded": {"for=198.51.100.9;proto=https"}}},
		{"X-Real-IP", http.Header{"X-Real-Ip": {"192.0.2.1"}}},
		{"underscore variants", http.Header{"X_forwarded_for": {"10.9.9.9"}, "X_real_ip": {"10.9.9.8"}}},
		{"everything at once", http.Header{"X-Forwarded-For": {"127.0.0.1"}, "Forwarded": {"for=127.0.0.1"}, "X-Real-Ip": {"127.0.0.1"}}},
	}
	want := map[string]string{} // request id -> true client address
	clients := make([]*http.Client, len(forgeries))
	for i, forge := range forgeries {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
		clients[i] = f.Client(fleet.ClientOptions{LocalAddr: src, Cookies: true})
		name := fmt.Sprintf("ip%d", i)
		cred := fmt.Sprintf(`{"username":%q,"password":"correct horse battery"}`, name)
		steps := []struct {
			method, path, body string
			status             int
		}{
			{http.MethodPost, "/api/signup", cred, http.StatusCreated},
			{http.MethodPost, "/api/login", cred, http.StatusOK},
			{http.MethodGet, "/api/files", "", http.StatusOK},
		}
		for k, s := range steps {
			id := fmt.Sprintf("clientip-%d-%d", i, k)
			if err := forgedRequest(ctx, clients[i], s.method, f.URL()+s.path, s.body, forge.header, id, s.status); err != nil {
				t.Fatalf("%s from %s: %v", forge.name, src, err)
			}
			want[id] = src.String()
		}
	}

	// Then a load: one worker per client address, each with its forgery.
	var mu sync.Mutex
	seq := make([]int, len(forgeries))
	res := fleet.Load(ctx, fleet.LoadOptions{
		Workers:     len(forgeries),
		Duration:    30 * time.Second,
		MaxRequests: 210,
		Request: func(ctx context.Context, w int) error {
			seq[w]++
			id := fmt.Sprintf("clientip-load-%d-%d", w, seq[w])
			mu.Lock()
			want[id] = netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + w)}).String()
			mu.Unlock()
			return forgedRequest(ctx, clients[w], http.MethodGet, f.URL()+"/api/me", "", forgeries[w].header, id, http.StatusOK)
		},
	})
	report(t, "clients from 127.0.0.2-8", res)
	if res.Failures != 0 {
		t.Errorf("got %d failed requests, want 0", res.Failures)
	}

	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	// Each process writes its line once the response is done: wait until every id
	// has a line from lb and one from an app.
	var lines map[string][]fleet.Line
	waitFor(t, 10*time.Second, "request lines from lb and an app for every request id", func() bool {
		var err error
		if lines, err = f.RequestLines(ids...); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			var lb, app bool
			for _, l := range lines[id] {
				lb = lb || l.Proc == "lb"
				app = app || strings.HasPrefix(l.Proc, "app-")
			}
			if !lb || !app {
				return false
			}
		}
		return true
	})
	checked := 0
	for _, id := range ids {
		for _, l := range lines[id] {
			checked++
			if got := l.Str("client_ip"); got != want[id] {
				t.Errorf("%s line for %s: client_ip %q, want %q: %s", l.Proc, id, got, want[id], l.Text)
			}
		}
	}
	t.Logf("%d request ids from %d client addresses: %d lb and app log lines checked", len(ids), len(forgeries), checked)
	for _, l := range lines["clientip-load-6-1"] {
		t.Logf("e.g. %s: %s", l.Proc, l.Text)
	}
}

// forgedRequest sends one request with the given extra (forged) headers and request id.
func forgedRequest(ctx context.Context, c *http.Client, method, url, body string, forged http.Header, id string, want int) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for h, v := range forged {
		req.Header[h] = v
	}
	req.Header.Set("X-Request-ID", id)
	_, _, err = fleet.Do(c, req, want)
	return err
}
