package app

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestLoginLimits: after 10 failures in 15 minutes from one client IP, or for
// one username, logins get 429 with Retry-After, on every app server (the
// count is in PostgreSQL). The client IP is the real one: the test server
// trusts 127.0.0.1 as its proxy and each "client" sends its X-Forwarded-For.
func TestLoginLimits(t *testing.T) {
	a := newTestApp(t, appOptions{trusted: []string{"127.0.0.1"}})
	b := newTestApp(t, appOptions{pool: a.pool, trusted: []string{"127.0.0.1"}, cfg: Config{Instance: "app-b"}})
	c := newAgent(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		wantStatus(t, c.call("POST", a.URL+"/api/signup", credentials{u, "password1"}), http.StatusCreated)
	}
	login := func(t *testing.T, base, ip, user, password string) response {
		t.Helper()
		return c.with(t).call("POST", base+"/api/login", credentials{user, password}, "X-Forwarded-For", ip)
	}
	want429 := func(t *testing.T, r response) {
		t.Helper()
		wantStatus(t, r, http.StatusTooManyRequests)
		r.errorText(t)
		s, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || s < 1 || s > int((15*time.Minute).Seconds()) {
			t.Errorf("Retry-After %q, want 1..900 seconds", r.Header.Get("Retry-After"))
		}
		if sessionCookie(r) != nil {
			t.Errorf("429 set a session cookie")
		}
	}

	t.Run("per username", func(t *testing.T) {
		// 10 failures for alice from 10 different addresses, alternating servers.
		for i := range 10 {
			base := []string{a.URL, b.URL}[i%2]
			wantStatus(t, login(t, base, fmt.Sprintf("198.51.100.%d", i+1), "alice", "wrong-pass"), http.StatusUnauthorized)
		}
		// Now even the right password, from a fresh address, on either server: 429.
		want429(t, login(t, a.URL, "198.51.100.200", "alice", "password1"))
		want429(t, login(t, b.URL, "198.51.100.201", "alice", "password1"))
		// Other users are not affected.
		wantStatus(t, login(t, a.URL, "198.51.100.1", "bob", "password1"), http.StatusOK)
	})

	t.Run("per client IP", func(t *testing.T) {
		const ip = "203.0.113.9"
		// 10 failures from one address over different (partly unknown) usernames.
		for i := range 10 {
			user := fmt.Sprintf("nobody%d", i)
			if i%3 == 0 {
				user = "bob"
			}
			wantStatus(t, login(t, b.URL, ip, user, "wrong-pass"), http.StatusUnauthorized)
		}
		want429(t, login(t, a.URL, ip, "carol", "password1"))
		// Another address logs carol in.
		wantStatus(t, login(t, a.URL, "203.0.113.10", "carol", "password1"), http.StatusOK)
	})

	t.Run("page login", func(t *testing.T) {
		r := c.with(t).call("POST", a.URL+"/login", "username=alice&password=password1",
			"Content-Type", "application/x-www-form-urlencoded", "X-Forwarded-For", "198.51.100.99")
		wantStatus(t, r, http.StatusTooManyRequests)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("page 429 without Retry-After")
		}
	})
}

// TestLoginClearsFailures: a successful login forgets that username's failures.
func TestLoginClearsFailures(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	wantStatus(t, c.call("POST", a.URL+"/api/signup", credentials{"alice", "password1"}), http.StatusCreated)
	for range 9 {
		wantStatus(t, c.call("POST", a.URL+"/api/login", credentials{"alice", "nope-nope"}), http.StatusUnauthorized)
	}
	wantStatus(t, c.call("POST", a.URL+"/api/login", credentials{"alice", "password1"}), http.StatusOK)
	for range 9 {
		wantStatus(t, c.call("POST", a.URL+"/api/login", credentials{"alice", "nope-nope"}), http.StatusUnauthorized)
	}
	wantStatus(t, c.call("POST", a.URL+"/api/login", credentials{"alice", "password1"}), http.StatusOK)
}
