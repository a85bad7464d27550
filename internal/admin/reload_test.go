package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/balancer"
)

// fakeReloader answers reloads from a script: each Reload takes the next error text ("" = ok).
type fakeReloader struct {
	mu      sync.Mutex
	results []string
	last    Reload
	calls   int
}

func (f *fakeReloader) Reload(context.Context) Reload {
	f.mu.Lock()
	defer f.mu.Unlock()
	errText := f.results[f.calls]
	f.calls++
	f.last = Reload{Time: time.Now(), OK: errText == "", Error: errText, Trigger: "api", Config: "/etc/lb/lb.yaml", RestartNeeded: []string{}}
	return f.last
}

func (f *fakeReloader) LastReload() Reload {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func TestReloadAPI(t *testing.T) {
	pool, err := balancer.NewPool(balancer.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeReloader{results: []string{"", "policy: unknown \"x\"\nbackends[0].url: bad"},
		last: Reload{OK: true, Trigger: "start", Config: "/etc/lb/lb.yaml", RestartNeeded: []string{}}}
	srv := httptest.NewServer(NewHandler(pool, nil, Options{Token: func() string { return testToken }, Reloader: r}))
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, Token: testToken}
	ctx := context.Background()

	// Both calls need the token.
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, srv.URL+"/api/reload", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s /api/reload without a token: %d, want 401", method, resp.StatusCode)
		}
	}
	if r.calls != 0 {
		t.Fatalf("an unauthorised POST reloaded")
	}
	if last, err := c.LastReload(ctx); err != nil || last.Trigger != "start" || !last.OK {
		t.Errorf("LastReload: %+v, %v", last, err)
	}
	res, err := c.Reload(ctx)
	if err != nil || !res.OK || res.Trigger != "api" {
		t.Errorf("Reload (applied): %+v, %v", res, err)
	}
	// A refused file: 422 with the outcome, which the client returns without an error.
	req, _ := http.NewRequest("POST", srv.URL+"/api/reload", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || raw["ok"] != false || !strings.Contains(raw["error"].(string), "policy") {
		t.Errorf("refused reload: %d %v, want 422 with ok false and the problems", resp.StatusCode, raw)
	}
	for _, k := range []string{"time", "ok", "error", "trigger", "config", "restart_needed", "last_success"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("reload object lacks %q: %v", k, raw)
		}
	}
	if last, err := c.LastReload(ctx); err != nil || last.OK || !strings.Contains(last.Error, "backends[0].url") {
		t.Errorf("LastReload after a refusal: %+v, %v", last, err)
	}
	// Other methods are refused with Allow.
	req, _ = http.NewRequest("DELETE", srv.URL+"/api/reload", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE /api/reload: %d Allow=%q, want 405 GET, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	// Without a Reloader the calls do not exist.
	srv2 := httptest.NewServer(NewHandler(pool, nil, Options{Token: func() string { return testToken }}))
	t.Cleanup(srv2.Close)
	var apiErr *APIError
	if _, err := (&Client{BaseURL: srv2.URL, Token: testToken}).Reload(ctx); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Reload without a Reloader: %v, want 404", err)
	}
}
