package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

// setReadOnly turns the whole server read-only (as a primary demoted to standby answers:
// 25006 on every write) or back, for the sessions already open too.
func setReadOnly(t *testing.T, cl *pgtest.Cluster, on bool) {
	t.Helper()
	pool := pgtest.OpenPool(t, cl.DSN("postgres"), nil, nil)
	defer pool.Close()
	sql := "ALTER SYSTEM RESET default_transaction_read_only"
	if on {
		sql = "ALTER SYSTEM SET default_transaction_read_only = on"
	}
	for _, q := range []string{sql, "SELECT pg_reload_conf()"} {
		if _, err := pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// want503 fails unless r is a 503 with Retry-After and no cookie.
func want503(t *testing.T, r response, what string) {
	t.Helper()
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("%s: %d (Retry-After %q), want 503 with Retry-After; body %q", what, r.StatusCode, r.Header.Get("Retry-After"), r.Body)
	}
	if sc := r.Header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("%s: Set-Cookie %q, want the cookie left alone", what, sc)
	}
}

// TestLoginOnReadOnlyDatabase: with the database answering reads but refusing writes (25006,
// a demoted primary), a login cannot count its attempt, so its password is never checked:
// right and wrong passwords alike get 503, never 200 or 401 (no oracle for a guesser).
// Reads still work. A login that meets a short read-only spell waits it out and succeeds.
func TestLoginOnReadOnlyDatabase(t *testing.T) {
	budget := 1500 * time.Millisecond
	cl := pgtest.NewCluster(t, pgtest.ClusterOptions{})
	pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
	a := failoverApp(t, cl.DSN("postgres"), budget)
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")

	setReadOnly(t, cl, true)
	pgtest.WaitSetting(t, a.pool, "default_transaction_read_only", "on")
	guesser := newAgent(t)
	for _, pw := range []string{"password1", "wrong-password"} {
		start := time.Now()
		r := guesser.call("POST", a.URL+"/api/login", credentials{"alice", pw})
		want503(t, r, "login on a read-only database with password "+pw)
		if took := time.Since(start); took > maxWait(budget) {
			t.Errorf("login took %v, want at most %v", took, maxWait(budget))
		}
	}
	if r := c.call("GET", a.URL+"/api/me", nil); r.StatusCode != http.StatusOK {
		t.Errorf("/api/me (a read) on a read-only database: %d, want 200", r.StatusCode)
	}
	if !strings.Contains(a.log.String(), "25006") {
		t.Errorf("the log does not name the read-only error")
	}

	done := make(chan response, 1)
	go func() { done <- guesser.call("POST", a.URL+"/api/login", credentials{"alice", "password1"}) }()
	time.Sleep(budget / 3) // the login is retrying meanwhile
	setReadOnly(t, cl, false)
	if r := <-done; r.StatusCode != http.StatusOK {
		t.Errorf("login across a short read-only spell: %d, want 200; body %q", r.StatusCode, r.Body)
	}
	// Counted and cleared: 9 more wrong passwords are allowed, the 10th is refused.
	for i := range 10 {
		r := guesser.call("POST", a.URL+"/api/login", credentials{"alice", "wrong-password"})
		if want := http.StatusUnauthorized; i < 9 && r.StatusCode != want {
			t.Fatalf("wrong password %d after the spell: %d, want %d", i+1, r.StatusCode, want)
		}
	}
}

// TestLoginLimiterThroughOutage: failed logins counted before an outage still count after
// it; attempts during the outage get 503 (their password unchecked, so nothing to count);
// the limit then applies exactly.
func TestLoginLimiterThroughOutage(t *testing.T) {
	ctx := t.Context()
	budget := time.Second
	// Commits flushed at once: a crash loses none (pgtest's default is fast and loose).
	cl := pgtest.NewCluster(t, pgtest.ClusterOptions{Settings: []string{"synchronous_commit=on"}})
	pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
	a := failoverApp(t, cl.DSN("postgres"), budget)
	newAgent(t).call("POST", a.URL+"/api/signup", credentials{"alice", "password1"})
	g := newAgent(t)
	for i := range loginMaxFailures - 1 {
		wantStatus(t, g.call("POST", a.URL+"/api/login", credentials{"alice", fmt.Sprint("guess", i)}), http.StatusUnauthorized)
	}
	if err := cl.StopImmediate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"guess-during", "password1"} {
		want503(t, g.call("POST", a.URL+"/api/login", credentials{"alice", pw}), "login with the database down")
	}
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, g.call("POST", a.URL+"/api/login", credentials{"alice", "guess-last"}), http.StatusUnauthorized)
	r := g.call("POST", a.URL+"/api/login", credentials{"alice", "password1"})
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("login after %d failures: %d, want 429 with Retry-After", loginMaxFailures, r.StatusCode)
	}
}

// TestUploadPastBudgetIs503: an upload whose chunks cannot be stored within the budget (the
// database loses every reply) answers 503 with Retry-After, in about the budget, and leaves
// no row and no chunk behind; the listing never shows it.
func TestUploadPastBudgetIs503(t *testing.T) {
	budget := time.Second
	cl := pgtest.TCPCluster(t, pgtest.ClusterOptions{})
	admin := pgtest.OpenPool(t, cl.DSN("postgres"), nil, store.Migrate)
	px := pgtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	a := failoverApp(t, px.DSN(cl.DSN("postgres")), budget)
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	inserts := 0
	px.LoseReplies(func(tag string) bool {
		if !strings.HasPrefix(tag, "INSERT") {
			return false
		}
		inserts++
		return inserts > 1 // every chunk, not the file's row
	})
	start := time.Now()
	r := c.upload(a.URL, "big.bin", randomData(t, 3*store.ChunkSize))
	took := time.Since(start)
	px.LoseReplies(nil)
	want503(t, r, "upload past the budget")
	r.errorText(t)
	if took > maxWait(budget) {
		t.Errorf("the upload answered after %v, want at most %v", took, maxWait(budget))
	}
	if n := count(t, admin, "files") + count(t, admin, "file_chunks"); n != 0 {
		t.Errorf("%d files and chunks rows left behind, want 0", n)
	}
	var files []listedFile
	l := c.call("GET", a.URL+"/api/files", nil)
	wantStatus(t, l, http.StatusOK)
	l.json(t, &files)
	if len(files) != 0 {
		t.Errorf("listing after the failed upload: %v, want none", files)
	}
	t.Logf("upload answered 503 after %v (budget %v)", took.Round(time.Millisecond), budget)
}
