package lbtest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Kinds of backend for HealthBackend, by how its /healthz answers.
const (
	HealthOK       = "ok"       // 200 {"status":"ok","version":"v1"}
	HealthFail     = "fail"     // 500
	HealthDraining = "draining" // 503 {"status":"draining"}, as an app after SIGTERM
	HealthDegraded = "degraded" // 503 {"status":"degraded"}, as an app without its database
	HealthFrozen   = "frozen"   // accepts the connection and never answers
	HealthClosed   = "closed"   // a closed port: connection refused
)

// HealthBackend starts a real backend of the given kind on loopback, whose every path
// answers as its /healthz does, and returns its base URL. It stops when the test ends.
func HealthBackend(t testing.TB, kind string) string {
	t.Helper()
	if kind == HealthClosed {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch kind {
		case HealthOK:
			io.WriteString(w, `{"status":"ok","version":"v1"}`)
		case HealthFail:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":"boom"}`)
		case HealthDraining, HealthDegraded:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":%q}`, kind)
		case HealthFrozen:
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			t.Errorf("HealthBackend: unknown kind %q", kind)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before Close, which waits for handlers
	return srv.URL
}
