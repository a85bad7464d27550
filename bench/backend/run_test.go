package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// startBackend runs the backend on one loopback port and returns its base URL.
func startBackend(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"backend", "-listen", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "listening" || f[1] != "http" {
		t.Fatalf("got line %q, want \"listening http ADDR\"", line)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v, want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return within 10 s of cancel")
		}
	})
	return "http://" + f[2]
}

func TestBackendAnswers(t *testing.T) {
	base := startBackend(t)
	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/plain; charset=utf-8", string(body)},
		{"/anything?x=1", "text/plain; charset=utf-8", string(body)},
		{"/healthz", "application/json", healthBody},
	}
	for _, tc := range tests {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("read %s: %v", tc.path, err)
		}
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: got status %d, want 200", tc.path, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != tc.wantType {
			t.Errorf("GET %s: got Content-Type %q, want %q", tc.path, got, tc.wantType)
		}
		if string(b) != tc.wantBody {
			t.Errorf("GET %s: got body %q, want %q", tc.path, b, tc.wantBody)
		}
	}
}

func TestHealthzIsWhatLBExpects(t *testing.T) {
	base := startBackend(t)
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Status, Version string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if v.Status != "ok" || v.Version != "bench" {
		t.Errorf("got status %q version %q, want ok, bench", v.Status, v.Version)
	}
}

func TestKeepAlive(t *testing.T) {
	base := startBackend(t)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var reused []bool
	for range 3 {
		var got bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { got = i.Reused }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		reused = append(reused, got)
	}
	if reused[0] || !reused[1] || !reused[2] {
		t.Errorf("got connection reuse %v, want [false true true]", reused)
	}
}

func TestRunNeedsAListener(t *testing.T) {
	err := run(context.Background(), []string{"backend"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run with no listener: got nil error, want one")
	}
}
