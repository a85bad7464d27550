package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"outrigger/internal/balancer"
	"outrigger/internal/lbtest"
)

const testToken = "s3cret-token-value"

type fixture struct {
	pool    *balancer.Pool
	srv     *httptest.Server
	logs    *lbtest.SyncBuffer
	changes *atomic.Int64
	client  *Client

	mu      sync.Mutex
	removed []string // names OnRemove was called with
}

func (f *fixture) removedNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

func newFixture(t *testing.T, backends ...string) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	pool, err := balancer.NewPool(balancer.PoolOptions{Registerer: reg})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	for i, name := range backends {
		if _, err := pool.Add(name, "http://127.0.0.1:"+string(rune('1'+i))+"000"); err != nil {
			t.Fatalf("Add %s: %v", name, err)
		}
	}
	f := &fixture{pool: pool, logs: &lbtest.SyncBuffer{}, changes: &atomic.Int64{}}
	logger := slog.New(slog.NewJSONHandler(f.logs, nil))
	h := NewHandler(pool, logger, Options{
		Token:        func() string { return testToken },
		DrainTimeout: func() time.Duration { return 2 * time.Second },
		Metrics:      promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		OnChange:     func() { f.changes.Add(1) },
		OnRemove: func(name string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.removed = append(f.removed, name)
		},
		Version: "v-test",
	})
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.client = &Client{BaseURL: f.srv.URL, Token: testToken, HTTP: f.srv.Client()}
	return f
}

// call sends one request and returns status, headers and body.
func (f *fixture) call(t *testing.T, method, path, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func errorText(t *testing.T, body []byte) string {
	t.Helper()
	var eb struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
		t.Fatalf("body %q is not {\"error\":...}: %v", body, err)
	}
	return eb.Error
}

func TestAuthOnEveryAPICall(t *testing.T) {
	f := newFixture(t, "app-1")
	calls := []struct{ method, path, body string }{
		{"GET", "/api/backends", ""},
		{"POST", "/api/backends", `{"name":"x","url":"http://127.0.0.1:1"}`},
		{"GET", "/api/backends/app-1", ""},
		{"DELETE", "/api/backends/app-1", ""},
		{"POST", "/api/backends/app-1/drain", ""},
		{"POST", "/api/backends/app-1/enable", ""},
		{"GET", "/api/nothing", ""},
	}
	auths := []struct{ name, header string }{
		{"none", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer " + testToken[:5]},
		{"token plus", "Bearer " + testToken + "x"},
		{"basic scheme", "Basic " + testToken},
		{"no scheme", testToken},
	}
	for _, c := range calls {
		for _, a := range auths {
			code, h, body := f.call(t, c.method, c.path, a.header, c.body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: got %d, want 401", c.method, c.path, a.name, code)
				continue
			}
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("401 content type: got %q, want application/json", got)
			}
			errorText(t, body)
		}
	}
	if n := len(f.pool.Snapshot()); n != 1 {
		t.Errorf("unauthorised calls changed the pool: %d backends, want 1", n)
	}
	if st, _ := f.pool.Get("app-1"); st.State != balancer.StateActive {
		t.Errorf("unauthorised drain took effect: state %v", st.State)
	}
	if got := f.changes.Load(); got != 0 {
		t.Errorf("OnChange ran %d times for refused calls, want 0", got)
	}
}

func TestEmptyTokenRefusesAll(t *testing.T) {
	pool, err := balancer.NewPool(balancer.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(pool, nil, Options{Token: func() string { return "" }}))
	defer srv.Close()
	for _, auth := range []string{"", "Bearer ", "Bearer  "} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/backends", nil)
		req.Header.Set("Authorization", auth)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("auth %q with no token configured: got %d, want 401", auth, resp.StatusCode)
		}
	}
}

func TestTokenOK(t *testing.T) {
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"Bearer  abc ", "abc", true},
		{"Bearer abd", "abc", false},
		{"Bearer ab", "abc", false},
		{"Bearer abcd", "abc", false},
		{"Bearer", "abc", false},
		{"abc", "abc", false},
		{"Bearer ", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := tokenOK(tt.header, tt.want); got != tt.ok {
			t.Errorf("tokenOK(%q, %q) = %t, want %t", tt.header, tt.want, got, tt.ok)
		}
	}
}

func TestBackendObjectFields(t *testing.T) {
	f := newFixture(t, "app-1", "app-2")
	at := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	f.pool.ReportCheck("app-1", true, true, 3, at, "", "v1.2.3")
	f.pool.SetHealthy("app-1", true)
	code, _, body := f.call(t, "GET", "/api/backends", "Bearer "+testToken, "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/backends: got %d, want 200 (%s)", code, body)
	}
	var raw []map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(raw) != 2 {
		t.Fatalf("got %d backends, want 2", len(raw))
	}
	want := []string{"name", "url", "state", "healthy", "in_flight", "upgraded", "checks_ok",
		"last_check", "last_error", "version", "requests", "failures", "last_change"}
	for _, k := range want {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("backend object lacks %q: %s", k, body)
		}
	}
	if len(raw[0]) != len(want) {
		t.Errorf("backend object has %d fields, want %d: %v", len(raw[0]), len(want), raw[0])
	}
	checks := []struct {
		key  string
		want any
	}{
		{"name", "app-1"}, {"url", "http://127.0.0.1:1000"}, {"state", "active"}, {"healthy", true},
		{"checks_ok", 3.0}, {"last_check", "2026-11-25T15:00:00Z"}, {"version", "v1.2.3"}, {"in_flight", 0.0},
	}
	for _, c := range checks {
		if got := raw[0][c.key]; got != c.want {
			t.Errorf("%s: got %v, want %v", c.key, got, c.want)
		}
	}
	if got := raw[1]["healthy"]; got != false {
		t.Errorf("app-2 healthy: got %v, want false", got)
	}
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name, body string
		want       int
	}{
		{"ok", `{"name":"app-9","url":"http://127.0.0.1:9009"}`, 201},
		{"taken", `{"name":"app-1","url":"http://127.0.0.1:9009"}`, 409},
		{"bad name", `{"name":"App 9","url":"http://127.0.0.1:9009"}`, 400},
		{"bad url path", `{"name":"app-8","url":"http://127.0.0.1:9009/x"}`, 400},
		{"bad url scheme", `{"name":"app-8","url":"ftp://127.0.0.1:9009"}`, 400},
		{"no port", `{"name":"app-8","url":"http://127.0.0.1"}`, 400},
		{"not json", `name=app-8`, 400},
		{"unknown field", `{"name":"app-8","url":"http://127.0.0.1:9009","weight":2}`, 400},
		{"trailing", `{"name":"app-8","url":"http://127.0.0.1:9009"} {}`, 400},
		{"too large", `{"name":"app-8","url":"http://127.0.0.1:9009","x":"` + strings.Repeat("a", maxBodyBytes) + `"}`, 413},
	}
	f := newFixture(t, "app-1")
	for _, tt := range tests {
		code, h, body := f.call(t, "POST", "/api/backends", "Bearer "+testToken, tt.body)
		if code != tt.want {
			t.Errorf("%s: got %d, want %d (%s)", tt.name, code, tt.want, body)
			continue
		}
		if code != 201 {
			errorText(t, body)
			continue
		}
		var b Backend
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Name != "app-9" || b.State != "active" || b.Healthy {
			t.Errorf("added backend: got %+v, want app-9 active unhealthy", b)
		}
		if got := h.Get("Location"); got != "/api/backends/app-9" {
			t.Errorf("Location: got %q", got)
		}
	}
	if got := len(f.pool.Snapshot()); got != 2 {
		t.Errorf("pool has %d backends, want 2", got)
	}
	if got := f.changes.Load(); got != 1 {
		t.Errorf("OnChange ran %d times, want 1", got)
	}
	if !strings.Contains(f.logs.String(), `"msg":"admin: backend added"`) {
		t.Errorf("no log line for the add: %s", f.logs.String())
	}
}

func TestDrainEnableIdempotent(t *testing.T) {
	f := newFixture(t, "app-1", "app-2")
	auth := "Bearer " + testToken
	steps := []struct {
		path, wantState string
	}{
		{"/api/backends/app-2/drain", "draining"},
		{"/api/backends/app-2/drain", "draining"},
		{"/api/backends/app-2/enable", "active"},
		{"/api/backends/app-2/enable", "active"},
	}
	for _, s := range steps {
		code, _, body := f.call(t, "POST", s.path, auth, "")
		if code != 200 {
			t.Fatalf("POST %s: got %d, want 200 (%s)", s.path, code, body)
		}
		var b Backend
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		if b.State != s.wantState {
			t.Errorf("POST %s: state %q, want %q", s.path, b.State, s.wantState)
		}
		st, _ := f.pool.Get("app-2")
		if st.State.String() != s.wantState {
			t.Errorf("POST %s: pool state %v, want %s", s.path, st.State, s.wantState)
		}
	}
	for _, p := range []string{"/api/backends/nope/drain", "/api/backends/nope/enable"} {
		code, _, body := f.call(t, "POST", p, auth, "")
		if code != 404 {
			t.Errorf("POST %s: got %d, want 404", p, code)
		}
		errorText(t, body)
	}
	logs := f.logs.String()
	for _, want := range []string{`"msg":"admin: backend drained"`, `"msg":"admin: backend enabled"`,
		`"backend":"app-2"`, `"from":"active"`, `"to":"draining"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, testToken) {
		t.Errorf("the token appears in the logs")
	}
}

func TestRemove(t *testing.T) {
	f := newFixture(t, "app-1", "app-2")
	code, _, body := f.call(t, "DELETE", "/api/backends/app-2", "Bearer "+testToken, "")
	if code != 200 {
		t.Fatalf("DELETE: got %d, want 200 (%s)", code, body)
	}
	if _, err := f.pool.Get("app-2"); !errors.Is(err, balancer.ErrNotFound) {
		t.Errorf("after DELETE, Get: got %v, want ErrNotFound", err)
	}
	if got, want := f.removedNames(), []string{"app-2"}; !slices.Equal(got, want) {
		t.Errorf("OnRemove calls: got %q, want %q", got, want)
	}
	code, _, body = f.call(t, "DELETE", "/api/backends/app-2", "Bearer "+testToken, "")
	if code != 404 {
		t.Errorf("second DELETE: got %d, want 404", code)
	}
	errorText(t, body)
	if got, want := f.removedNames(), []string{"app-2"}; !slices.Equal(got, want) {
		t.Errorf("after a 404, OnRemove calls: got %q, want %q", got, want)
	}
	if !strings.Contains(f.logs.String(), `"msg":"admin: backend removed"`) {
		t.Errorf("no log line for the removal")
	}
}

func TestOpenEndpoints(t *testing.T) {
	f := newFixture(t, "app-1")
	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/healthz", "application/json", `"version":"v-test"`},
		{"/metrics", "text/plain", "lb_backend_up"},
		{"/", "text/html", "<title>lb status</title>"},
		{"/assets/status.js", "text/javascript", "sessionStorage"},
		{"/assets/metrics.js", "text/javascript", "histogram_quantile"},
		{"/assets/status.css", "text/css", "table"},
	}
	for _, tt := range tests {
		code, h, body := f.call(t, "GET", tt.path, "", "")
		if code != 200 {
			t.Errorf("GET %s without token: got %d, want 200", tt.path, code)
			continue
		}
		if got := h.Get("Content-Type"); !strings.HasPrefix(got, tt.wantType) {
			t.Errorf("GET %s: content type %q, want %s", tt.path, got, tt.wantType)
		}
		if !bytes.Contains(body, []byte(tt.wantBody)) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.wantBody)
		}
	}
	_, h, body := f.call(t, "GET", "/", "", "")
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("status page CSP: %q", csp)
	}
	if bytes.Contains(body, []byte(testToken)) {
		t.Errorf("status page contains the token")
	}
	for _, tt := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{"PUT", "/api/backends", 405, "GET, POST"},
		{"POST", "/api/backends/app-1", 405, "GET, DELETE"},
		{"GET", "/api/backends/app-1/drain", 405, "POST"},
		{"GET", "/api/backends/app-1/other", 404, ""},
		{"GET", "/api/backendsx", 404, ""},
		{"GET", "/api/", 404, ""},
	} {
		code, h, body := f.call(t, tt.method, tt.path, "Bearer "+testToken, "")
		if code != tt.want || h.Get("Allow") != tt.allow {
			t.Errorf("%s %s: got %d Allow=%q, want %d Allow=%q", tt.method, tt.path, code, h.Get("Allow"), tt.want, tt.allow)
		}
		errorText(t, body)
	}
	if code, _, _ := f.call(t, "GET", "/nothing-here", "", ""); code != 404 {
		t.Errorf("GET /nothing-here: got %d, want 404", code)
	}
}

func TestClient(t *testing.T) {
	f := newFixture(t, "app-1")
	ctx := context.Background()
	c := f.client

	list, err := c.Backends(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "app-1" {
		t.Fatalf("Backends: got %+v, %v", list, err)
	}
	b, err := c.Add(ctx, "app-2", "http://127.0.0.1:7777")
	if err != nil || b.Name != "app-2" || b.URL != "http://127.0.0.1:7777" {
		t.Fatalf("Add: got %+v, %v", b, err)
	}
	_, err = c.Add(ctx, "app-2", "http://127.0.0.1:7777")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Message == "" {
		t.Errorf("Add twice: got %v, want *APIError 409", err)
	}
	if b, err = c.Drain(ctx, "app-2"); err != nil || b.State != StateDraining {
		t.Errorf("Drain: got %+v, %v", b, err)
	}
	if b, err = c.Backend(ctx, "app-2"); err != nil || b.State != StateDraining {
		t.Errorf("Backend: got %+v, %v", b, err)
	}
	if b, err = c.Enable(ctx, "app-2"); err != nil || b.State != StateActive {
		t.Errorf("Enable: got %+v, %v", b, err)
	}
	if b, err = c.WaitIdle(ctx, "app-2", 10*time.Millisecond); err != nil || b.InFlight != 0 {
		t.Errorf("WaitIdle: got %+v, %v", b, err)
	}

	// WaitHealthy returns once a check marks the backend up.
	done := make(chan error, 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() {
		_, err := c.WaitFor(wctx, "app-2", 5*time.Millisecond, func(b Backend) bool { return b.ChecksOK == 0 })
		if err == nil {
			f.pool.SetHealthy("app-2", true)
		}
		done <- err
	}()
	if b, err = c.WaitHealthy(wctx, "app-2", 5*time.Millisecond); err != nil || !b.Healthy {
		t.Errorf("WaitHealthy: got %+v, %v", b, err)
	}
	if err := <-done; err != nil {
		t.Errorf("WaitFor: %v", err)
	}

	if err := c.Remove(ctx, "app-2"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if _, err := c.Backend(ctx, "app-2"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Backend after Remove: got %v, want 404", err)
	}
	// A wait on an unknown backend stops at once with the API's answer.
	if _, err := c.WaitHealthy(ctx, "app-2", time.Millisecond); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("WaitHealthy unknown: got %v, want 404", err)
	}

	bad := &Client{BaseURL: f.srv.URL, Token: "wrong", HTTP: f.srv.Client()}
	if _, err := bad.Backends(ctx); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("wrong token: got %v, want 401", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := c.WaitIdle(cctx, "app-1", time.Millisecond); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitIdle with a cancelled ctx: got %v, want context.Canceled", err)
	}
}
