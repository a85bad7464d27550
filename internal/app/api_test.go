package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

func TestHealthz(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	check := func(name string, wantCode int, want healthBody) response {
		t.Helper()
		r := c.call("GET", a.URL+"/healthz", nil)
		var got healthBody
		r.json(t, &got)
		if r.StatusCode != wantCode || got != want {
			t.Errorf("%s: /healthz = %d %+v, want %d %+v", name, r.StatusCode, got, wantCode, want)
		}
		return r
	}
	r := check("ok", http.StatusOK, healthBody{"ok", "v1.2.3-test", "app-test"})
	if r.Close {
		t.Errorf("ok answer closes the connection")
	}
	// Exactly the fields of DESIGN, no more.
	var raw map[string]any
	r.json(t, &raw)
	if len(raw) != 3 || raw["status"] == nil || raw["version"] == nil || raw["instance"] == nil {
		t.Errorf("/healthz body %s, want exactly status, version, instance", r.Body)
	}

	early := newTestApp(t, appOptions{pool: a.pool, notMigrated: true, cfg: Config{Instance: "app-early"}})
	r = c.call("GET", early.URL+"/healthz", nil)
	var got healthBody
	r.json(t, &got)
	if r.StatusCode != http.StatusServiceUnavailable || got.Status != "degraded" {
		t.Errorf("before migrations: /healthz = %d %+v, want 503 degraded", r.StatusCode, got)
	}

	a.ready.SetDraining()
	r = check("draining", http.StatusServiceUnavailable, healthBody{"draining", "v1.2.3-test", "app-test"})
	if !r.Close {
		t.Errorf("draining: answer without Connection: close")
	}
	// Every answer, not only /healthz, says Connection: close while draining.
	r = c.call("GET", a.URL+"/api/me", nil)
	if !r.Close {
		t.Errorf("draining: /api/me answer without Connection: close")
	}
}

func TestHealthzDatabaseDown(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	wantStatus(t, c.call("GET", a.URL+"/healthz", nil), http.StatusOK)
	a.pool.Close()
	r := c.call("GET", a.URL+"/healthz", nil)
	var got healthBody
	r.json(t, &got)
	if r.StatusCode != http.StatusServiceUnavailable || got.Status != "degraded" || got.Instance != "app-test" {
		t.Errorf("database closed: /healthz = %d %+v, want 503 degraded", r.StatusCode, got)
	}
}

// TestHealthzDatabaseSlow: a database that does not answer within 500 ms (here:
// every pooled connection busy) makes /healthz answer degraded, in about 500 ms.
func TestHealthzDatabaseSlow(t *testing.T) {
	pool := pgtest.OpenPool(t, pgtest.DSN(t), func(c *pgxpool.Config) { c.MaxConns = 1 }, store.Migrate)
	a := newTestApp(t, appOptions{pool: pool})
	c := newAgent(t)
	wantStatus(t, c.call("GET", a.URL+"/healthz", nil), http.StatusOK)

	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := c.call("GET", a.URL+"/healthz", nil)
	took := time.Since(start)
	conn.Release()
	var got healthBody
	r.json(t, &got)
	if r.StatusCode != http.StatusServiceUnavailable || got.Status != "degraded" {
		t.Errorf("database busy: /healthz = %d %+v, want 503 degraded", r.StatusCode, got)
	}
	if took < pingTimeout || took > pingTimeout+5*time.Second {
		t.Errorf("degraded after %v, want about %v", took, pingTimeout)
	}
	wantStatus(t, c.call("GET", a.URL+"/healthz", nil), http.StatusOK)
}

// TestHealthLoggedOnChange: health checks are logged only when their result changes.
func TestHealthLoggedOnChange(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	for range 3 {
		c.call("GET", a.URL+"/healthz", nil)
	}
	a.ready.SetDraining()
	for range 3 {
		c.call("GET", a.URL+"/healthz", nil)
	}
	c.call("GET", a.URL+"/api/me", nil)
	var statuses []float64
	for _, l := range a.log.lines(t, "request") {
		if l["path"] == "/healthz" {
			statuses = append(statuses, l["status"].(float64))
		}
	}
	if len(statuses) != 2 || statuses[0] != 200 || statuses[1] != 503 {
		t.Errorf("logged /healthz statuses %v, want [200 503]", statuses)
	}
	if n := len(a.log.lines(t, "request")); n != 3 {
		t.Errorf("%d request lines, want 3 (2 health changes, 1 /api/me)", n)
	}
}

func TestSignup(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	wantStatus(t, c.call("POST", a.URL+"/api/signup", credentials{"taken", "password1"}), http.StatusCreated)

	tests := []struct {
		name string
		body any
		want int
	}{
		{"created", credentials{"alice.b_c-1", "12345678"}, http.StatusCreated},
		{"72-byte password", credentials{"bob", strings.Repeat("p", 72)}, http.StatusCreated},
		{"taken", credentials{"taken", "password2"}, http.StatusConflict},
		{"short username", credentials{"ab", "password1"}, http.StatusBadRequest},
		{"long username", credentials{strings.Repeat("a", 65), "password1"}, http.StatusBadRequest},
		{"upper case", credentials{"Alice", "password1"}, http.StatusBadRequest},
		{"space", credentials{"al ice", "password1"}, http.StatusBadRequest},
		{"short password", credentials{"carol", "1234567"}, http.StatusBadRequest},
		{"73-byte password", credentials{"dave", strings.Repeat("p", 73)}, http.StatusBadRequest},
		{"missing password", `{"username":"erin"}`, http.StatusBadRequest},
		{"unknown field", `{"username":"frank","password":"password1","admin":true}`, http.StatusBadRequest},
		{"not JSON", `username=grace`, http.StatusBadRequest},
		{"two objects", `{"username":"heidi","password":"password1"}{}`, http.StatusBadRequest},
		{"empty body", ``, http.StatusBadRequest},
		{"too big", `{"username":"ivan","password":"` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.with(t) // fail this subtest, not its parent
			r := c.call("POST", a.URL+"/api/signup", tc.body)
			wantStatus(t, r, tc.want)
			if tc.want == http.StatusCreated {
				var got userBody
				r.json(t, &got)
				if want := tc.body.(credentials).Username; got.Username != want {
					t.Errorf("username = %q, want %q", got.Username, want)
				}
				return
			}
			r.errorText(t)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
		})
	}
	if n := count(t, a.pool, "users"); n != 3 {
		t.Errorf("%d users, want 3", n)
	}
}

func TestLoginLogoutMe(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	wantStatus(t, c.call("POST", a.URL+"/api/signup", credentials{"alice", "password1"}), http.StatusCreated)

	r := c.call("GET", a.URL+"/api/me", nil)
	wantStatus(t, r, http.StatusUnauthorized)
	r.errorText(t)

	for _, tc := range []struct {
		name string
		body any
		want int
	}{
		{"wrong password", credentials{"alice", "password2"}, http.StatusUnauthorized},
		{"unknown user", credentials{"nobody", "password1"}, http.StatusUnauthorized},
		{"empty", credentials{"", ""}, http.StatusBadRequest},
		{"unknown field", `{"username":"alice","password":"password1","x":1}`, http.StatusBadRequest},
	} {
		r := c.call("POST", a.URL+"/api/login", tc.body)
		if r.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.want)
		}
		if sessionCookie(r) != nil {
			t.Errorf("%s: a session cookie was set", tc.name)
		}
	}

	r = c.call("POST", a.URL+"/api/login", credentials{"alice", "password1"})
	wantStatus(t, r, http.StatusOK)
	var u userBody
	r.json(t, &u)
	if u.Username != "alice" {
		t.Errorf("login username = %q", u.Username)
	}
	first := sessionCookie(r)
	if first == nil {
		t.Fatal("login set no session cookie")
	}
	if first.Name != "__Host-session" || !first.Secure || !first.HttpOnly || first.SameSite != http.SameSiteLaxMode || first.Path != "/" || first.Domain != "" {
		t.Errorf("cookie %+v: want __Host-session, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", first)
	}
	if n := count(t, a.pool, "sessions"); n != 1 {
		t.Errorf("%d session rows, want 1", n)
	}

	r = c.call("GET", a.URL+"/api/me", nil)
	wantStatus(t, r, http.StatusOK)
	var me meBody
	r.json(t, &me)
	if want := (meBody{"alice", "app-test", "v1.2.3-test"}); me != want {
		t.Errorf("me = %+v, want %+v", me, want)
	}

	// Logging in again gives a new session id; the old one is gone.
	r = c.call("POST", a.URL+"/api/login", credentials{"alice", "password1"})
	wantStatus(t, r, http.StatusOK)
	second := sessionCookie(r)
	if second == nil || second.Value == first.Value {
		t.Fatalf("second login: cookie %v, want a new one", second)
	}
	if n := count(t, a.pool, "sessions"); n != 1 {
		t.Errorf("%d session rows after a second login, want 1 (the old one deleted)", n)
	}
	old := newAgent(t)
	r = old.call("GET", a.URL+"/api/me", nil, "Cookie", first.Name+"="+first.Value)
	wantStatus(t, r, http.StatusUnauthorized)

	r = c.call("POST", a.URL+"/api/logout", nil)
	wantStatus(t, r, http.StatusNoContent)
	if ck := sessionCookie(r); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("logout cookie %v, want an expired one", ck)
	}
	if n := count(t, a.pool, "sessions"); n != 0 {
		t.Errorf("%d session rows after logout, want 0", n)
	}
	wantStatus(t, c.call("GET", a.URL+"/api/me", nil), http.StatusUnauthorized)
	r = old.call("GET", a.URL+"/api/me", nil, "Cookie", second.Name+"="+second.Value)
	wantStatus(t, r, http.StatusUnauthorized)
	// Logging out without a session is fine too.
	wantStatus(t, newAgent(t).call("POST", a.URL+"/api/logout", nil), http.StatusNoContent)
}

func TestTamperedCookie(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	var value string
	for _, ck := range c.client.Jar.Cookies(mustURL(t, a.URL)) {
		value = ck.Value
	}
	tampered := value[:len(value)-2] + "AA"
	r := newAgent(t).call("GET", a.URL+"/api/me", nil, "Cookie", "__Host-session="+tampered)
	wantStatus(t, r, http.StatusUnauthorized)
}

// TestDatabaseErrorIs503: when the database fails, answers are 503 (never
// 401) and no cookie is set or expired.
func TestDatabaseErrorIs503(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	wantStatus(t, c.call("GET", a.URL+"/api/me", nil), http.StatusOK)
	a.pool.Close()

	tests := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/me", nil},
		{"POST", "/api/login", credentials{"alice", "password1"}},
		{"POST", "/api/signup", credentials{"bob", "password1"}},
		{"POST", "/api/logout", nil},
		{"GET", "/api/files", nil},
		{"GET", "/api/files/7d0a3b52-3d1f-4a5e-8c1e-0d6f0b1b2c3d", nil},
		{"GET", "/", nil},
		{"POST", "/login", "username=alice&password=password1"},
	}
	for _, tc := range tests {
		req := request(t, tc.method, a.URL+tc.path, tc.body)
		if s, ok := tc.body.(string); ok && s != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		r := c.do(req)
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s %s: status %d, want 503; body %q", tc.method, tc.path, r.StatusCode, r.Body)
		}
		if sc := r.Header.Values("Set-Cookie"); len(sc) > 0 {
			t.Errorf("%s %s: Set-Cookie %q, want none", tc.method, tc.path, sc)
		}
	}
}

func TestUnknownRoutesJSON(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	r := c.call("GET", a.URL+"/api/nope", nil)
	wantStatus(t, r, http.StatusNotFound)
	r.errorText(t)
	r = c.call("DELETE", a.URL+"/api/me", nil)
	wantStatus(t, r, http.StatusMethodNotAllowed)
	r.errorText(t)
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q, want GET in it", allow)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	wantStatus(t, c.call("POST", a.URL+"/api/signup", credentials{"alice", "password1"}), http.StatusCreated)
	host := strings.TrimPrefix(a.URL, "https://")
	form := "username=alice&password=password1"
	tests := []struct {
		name, method, path string
		body               any
		header             []string
		want               int
	}{
		{"api cross-site", "POST", "/api/login", credentials{"alice", "password1"}, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"api same-site", "POST", "/api/login", credentials{"alice", "password1"}, []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"api foreign origin", "POST", "/api/login", credentials{"alice", "password1"}, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"upload cross-site", "POST", "/api/files", "x", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"logout cross-site", "POST", "/api/logout", nil, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"page login cross-site", "POST", "/login", form, []string{"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"page upload foreign origin", "POST", "/upload", "x", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"api same-origin", "POST", "/api/login", credentials{"alice", "password1"}, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"api own origin", "POST", "/api/login", credentials{"alice", "password1"}, []string{"Origin", "https://" + host}, http.StatusOK},
		{"api no browser headers", "POST", "/api/login", credentials{"alice", "password1"}, nil, http.StatusOK},
		{"page login same-origin", "POST", "/login", form, []string{"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin"}, http.StatusSeeOther},
		{"GET cross-site allowed", "GET", "/healthz", nil, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newAgent(t).call(tc.method, a.URL+tc.path, tc.body, tc.header...)
			wantStatus(t, r, tc.want)
			if tc.want == http.StatusForbidden {
				r.errorText(t)
				if sessionCookie(r) != nil {
					t.Errorf("refused request set a cookie")
				}
			}
		})
	}
}
