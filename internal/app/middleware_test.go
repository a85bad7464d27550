package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestInstanceOnEveryAnswer: X-Instance is on answers that no route handler
// wrote (the mux's 404 and 405, outside /api/ too) and on a panic's 500.
// (agent.do checks it on every answer of every test.)
func TestInstanceOnEveryAnswer(t *testing.T) {
	a := newTestApp(t, appOptions{})
	c := newAgent(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/nope", http.StatusNotFound},
		{"POST", "/healthz", http.StatusMethodNotAllowed},
		{"PUT", "/", http.StatusMethodNotAllowed},
		{"GET", "/api/files/x/y", http.StatusNotFound},
	} {
		r := c.call(tc.method, a.URL+tc.path, nil)
		if r.StatusCode != tc.want || r.Header.Get("X-Instance") != "app-test" {
			t.Errorf("%s %s: %d with X-Instance %q, want %d with app-test", tc.method, tc.path, r.StatusCode, r.Header.Get("X-Instance"), tc.want)
		}
	}
}

// TestPanicIs500: a handler's panic before its answer started is a JSON 500
// with X-Instance (logged as 500); after the answer started, or with
// http.ErrAbortHandler, the response is aborted.
func TestPanicIs500(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment")
		panic("boom")
	})
	mux.HandleFunc("GET /late", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		panic("late boom")
	})
	mux.HandleFunc("GET /abort", func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	})
	srv := httptest.NewServer(middleware(Config{Instance: "app-panic"}, logger, nil, &Readiness{}, mux))
	t.Cleanup(srv.Close)
	// net/http logs the re-panics; keep them out of the test output.
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)

	c := newAgent(t)
	r := c.call("GET", srv.URL+"/panic", nil, "X-Request-ID", "panic-1")
	wantStatus(t, r, http.StatusInternalServerError)
	r.errorText(t)
	if got := r.Header.Get("X-Instance"); got != "app-panic" {
		t.Errorf("X-Instance = %q, want app-panic", got)
	}
	if got := r.Header.Get("Content-Disposition"); got != "" {
		t.Errorf("500 kept the handler's Content-Disposition %q", got)
	}
	waitLogged(t, logs, "panic-1", http.StatusInternalServerError)
	if n := len(logs.lines(t, "handler panic")); n != 1 {
		t.Errorf("%d panic lines, want 1; log:\n%s", n, logs.String())
	}

	for _, path := range []string{"/late", "/abort"} {
		resp, err := c.client.Get(srv.URL + path)
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("GET %s: a whole %d answer %q, want it aborted", path, resp.StatusCode, b)
			}
		}
	}
}

// TestClientGoneIs499: a failure caused by the client going away (its request
// context cancelled) is logged as status 499, with no error line.
func TestClientGoneIs499(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	started := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // a query the client's departure cancels
		unavailable(w, r, logger, "slow query", r.Context().Err())
	})
	srv := httptest.NewServer(middleware(Config{Instance: "app-gone"}, logger, nil, &Readiness{}, mux))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(t.Context())
	req := request(t, "GET", srv.URL+"/slow", nil, "X-Request-ID", "gone-1").WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; err == nil {
		t.Errorf("request: got an answer, want the client's cancellation")
	}
	waitLogged(t, logs, "gone-1", statusClientGone)
	if n := len(logs.lines(t, "slow query failed")); n != 0 {
		t.Errorf("%d error lines for a client that went away, want 0", n)
	}
}
