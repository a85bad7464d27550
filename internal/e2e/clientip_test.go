package e2e

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
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
	for i, forge := range forgeries {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
		c := f.Client(fleet.ClientOptions{LocalAddr: src, Cookies: true})
		name := fmt.Sprintf("ip%d", i)
		cred := fmt.Sprintf(`{"username":%q,"password":"correct horse battery"}`, name)
		steps := []struct {
			method, path, body string
			status             int
		}{
			{http.MethodPost, "/api/signup", cred, http.StatusCreated},
			{http.MethodPost, "/api/login", cred, http.StatusOK},
			{http.MethodGet, "/api/me", "", http.StatusOK},
			{http.MethodGet, "/api/me", "", http.StatusOK},
			{http.MethodGet, "/api/files", "", http.StatusOK},
		}
		for k, s := range steps {
			req, err := http.NewRequestWithContext(ctx, s.method, f.URL()+s.path, strings.NewReader(s.body))
			if err != nil {
				t.Fatal(err)
			}
			if s.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for h, v := range forge.header {
				req.Header[h] = v
			}
			id := fmt.Sprintf("clientip-%d-%d", i, k)
			req.Header.Set("X-Request-ID", id)
			if _, _, err := fleet.Do(c, req, s.status); err != nil {
				t.Fatalf("%s from %s: %v", forge.name, src, err)
			}
			want[id] = src.String()
		}
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
}
