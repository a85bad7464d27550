package app

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"outrigger/internal/app/store"
	"outrigger/internal/pgtest"
)

// TestTwoServers: two app servers on one database. A user logged in through
// one is logged in on the other, a file uploaded through one downloads
// through the other, and the session outlives the first server.
func TestTwoServers(t *testing.T) {
	dsn := pgtest.DSN(t)
	p1, p2 := pgtest.OpenPool(t, dsn, nil, store.Migrate), pgtest.OpenPool(t, dsn, nil, nil)
	one := newTestApp(t, appOptions{pool: p1, cfg: Config{Instance: "app-1"}})
	two := newTestApp(t, appOptions{pool: p2, cfg: Config{Instance: "app-2"}})
	c := newAgent(t)
	c.signupLogin(one.URL, "alice", "password1")

	r := c.call("GET", two.URL+"/api/me", nil)
	wantStatus(t, r, http.StatusOK)
	var me meBody
	r.json(t, &me)
	if me.Username != "alice" || me.Instance != "app-2" || r.Header.Get("X-Instance") != "app-2" {
		t.Errorf("me on the second server: %+v, X-Instance %q", me, r.Header.Get("X-Instance"))
	}

	data := bytes.Repeat([]byte("outrigger "), 100_000) // 1 MB, four chunks
	f := c.uploadFile(one.URL, "shared.bin", data)
	d := c.call("GET", two.URL+"/api/files/"+f.ID, nil)
	wantStatus(t, d, http.StatusOK)
	if !bytes.Equal(d.Body, data) {
		t.Errorf("second server sent %d bytes, not the %d uploaded through the first", len(d.Body), len(data))
	}

	// The first server goes away: the session still works on the second.
	one.srv.Close()
	p1.Close()
	if _, err := c.client.Get(one.URL + "/api/me"); err == nil {
		t.Fatalf("first server still answers")
	}
	r = c.call("GET", two.URL+"/api/me", nil)
	wantStatus(t, r, http.StatusOK)
	r = c.call("GET", two.URL+"/api/files", nil)
	wantStatus(t, r, http.StatusOK)
}

// TestDatabaseRestart: while PostgreSQL is down, answers are 503 and the
// cookie is left alone; once it is back, the same cookie is still logged in
// (a blip logs nobody out), with no restart of the app.
func TestDatabaseRestart(t *testing.T) {
	ctx := t.Context()
	cl, pool := privateCluster(t)
	a := newTestApp(t, appOptions{pool: pool})
	c := newAgent(t)
	c.signupLogin(a.URL, "alice", "password1")
	wantStatus(t, c.call("GET", a.URL+"/api/me", nil), http.StatusOK)

	if err := cl.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/me", "/api/files", "/"} {
		r := c.call("GET", a.URL+path, nil)
		wantStatus(t, r, http.StatusServiceUnavailable)
		if sc := r.Header.Values("Set-Cookie"); len(sc) > 0 {
			t.Errorf("%s with the database down: Set-Cookie %q", path, sc)
		}
	}
	var h healthBody
	r := c.call("GET", a.URL+"/healthz", nil)
	r.json(t, &h)
	if r.StatusCode != http.StatusServiceUnavailable || h.Status != "degraded" {
		t.Errorf("/healthz with the database down: %d %+v", r.StatusCode, h)
	}

	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool's connections died with the server; the first query after the
	// restart already works (pgsession retries once on a dead connection).
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = c.call("GET", a.URL+"/api/me", nil)
		if r.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
	}
	wantStatus(t, r, http.StatusOK)
	var me meBody
	r.json(t, &me)
	if me.Username != "alice" {
		t.Errorf("after the restart: %+v", me)
	}
}
