package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"outrigger/internal/pgtest"
)

// TestTwoApps runs two whole apps (run, in-process) on one database, started
// together so that they migrate at the same time. A user logged in on one is
// logged in on the other; a file uploaded through one comes back identical
// from the other; after the first stops (cleanly), the session still works
// on the second.
func TestTwoApps(t *testing.T) {
	dsn := pgtest.DSN(t)
	// Both start at once: migrations run in the background, so they overlap
	// (the store's advisory lock serialises them).
	env1, env2 := testEnv(t, dsn), testEnv(t, dsn)
	env1["APP_INSTANCE"], env2["APP_INSTANCE"] = "app-1", "app-2"
	one, two := startApp(t, env1), startApp(t, env2)
	for _, a := range []*inProcess{one, two} {
		waitFor(t, 30*time.Second, "/healthz ok", func() bool { s, _, _ := health(http.DefaultClient, a.URL); return s == "ok" })
	}

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	call := func(method, url, ctype string, body io.Reader, want int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, body)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		if resp.StatusCode != want {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, b)
		}
		return resp
	}
	signupLogin(t, client, one.URL)

	resp := call("GET", two.URL+"/api/me", "", nil, http.StatusOK)
	var me struct{ Username, Instance string }
	json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if me.Username != "alice" || me.Instance != "app-2" {
		t.Errorf("me on app-2: %+v", me)
	}

	data := make([]byte, 700<<10)
	rand.Read(data)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "shared.bin")
	fw.Write(data)
	mw.Close()
	resp = call("POST", one.URL+"/api/files", mw.FormDataContentType(), &body, http.StatusCreated)
	var f struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&f)
	resp.Body.Close()
	resp = call("GET", two.URL+"/api/files/"+f.ID, "", nil, http.StatusOK)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("app-2 sent %d bytes, not the %d uploaded through app-1", len(got), len(data))
	}

	if err := one.stop(t); err != nil {
		t.Errorf("app-1 stopped with %v, want a clean stop", err)
	}
	if _, err := http.Get(one.URL + "/healthz"); err == nil {
		t.Errorf("app-1 still answers after it stopped")
	}
	call("GET", two.URL+"/api/me", "", nil, http.StatusOK).Body.Close()
	call("GET", two.URL+"/api/files/"+f.ID, "", nil, http.StatusOK).Body.Close()
}

// TestShutdownTimeout: a request still running at SHUTDOWN_TIMEOUT is cut,
// and run reports it (exit status 1), rather than waiting for ever.
func TestShutdownTimeout(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := testEnv(t, dsn)
	env["SHUTDOWN_TIMEOUT"] = "300ms"
	a := startApp(t, env)
	waitFor(t, 30*time.Second, "/healthz ok", func() bool { s, _, _ := health(http.DefaultClient, a.URL); return s == "ok" })
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	signupLogin(t, client, a.URL)
	// An upload that never finishes.
	pr, pw := io.Pipe()
	defer pw.Close()
	mw := multipart.NewWriter(pw)
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", a.URL+"/api/files", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	fw, _ := mw.CreateFormFile("file", "stuck.bin")
	fw.Write(make([]byte, 300<<10)) // the server is reading it: the request is in flight
	db, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	waitFor(t, 10*time.Second, "the upload's first chunk in the database", func() bool {
		var n int
		return db.QueryRow(t.Context(), "SELECT count(*) FROM file_chunks").Scan(&n) == nil && n > 0
	})

	err = a.stop(t)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "graceful shutdown") {
		t.Errorf("run = %v (exit %d), want a graceful shutdown error, exit 1", err, exitCode(err))
	}
	pw.CloseWithError(io.ErrClosedPipe)
	<-errc
}
